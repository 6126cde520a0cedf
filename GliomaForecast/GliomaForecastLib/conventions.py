"""Slicer conventions for the module's outputs: color table, segment terminology and colors, subject hierarchy
placement and node names. MRML only (no Qt)."""

from __future__ import annotations

import numpy as np
import slicer

from gliomaforecast.output import record as forecast_output

PROBABILITY_COLOR_TABLE = "GliomaForecast Probability"

# Anchor colors (value in [0, 1] -> RGB) of the probability table: dark purple -> red -> yellow -> white, a
# monotonic-luminance ramp in the spirit of matplotlib's "inferno", so that high probability reads as bright.
_PROBABILITY_ANCHORS = (
    (0.00, (0.00, 0.00, 0.02)),
    (0.25, (0.34, 0.06, 0.43)),
    (0.50, (0.73, 0.21, 0.33)),
    (0.75, (0.98, 0.55, 0.04)),
    (1.00, (0.99, 1.00, 0.64)),
)

# Segment colors (RGB 0..1) and DICOM terminology (CID 9503 RT Target category, CID 9534 Radiotherapy Target
# types: SCT 228791009 GTV, SCT 228792002 CTV; anatomic region SCT 12738006 Brain).
SEGMENT_COLORS = forecast_output.SEGMENT_COLORS  # the same colors as the CLI's targets.seg.nrrd
_TARGET_TYPES = {
    "GTV": ("228791009", "SCT", "Gross Tumor Volume"),
    "CTV standard": ("228792002", "SCT", "Clinical Target Volume"),
    "CTV forecast": ("228792002", "SCT", "Clinical Target Volume"),
}


# The BraTS label segments: one mapping, label -> segment name. loadCase adds a scan's non-empty labels as these
# segments of its "GTV day D" segmentation; the label map of a segmentation is rebuilt from the segments of these
# names (adapters.label_map_from_segments), so a Segment Editor segmentation with such segments serves too.
LABEL_SEGMENTS = {1: "Necrosis", 2: "Edema", 3: "Enhancing tumor", 4: "Resection cavity"}
# Their colors (RGB 0..1; necrosis and edema as Slicer's DICOM master list recommends) and DICOM terminology (CID 7159
# lesion types in the category SCT 49755003 Morphologically Altered Structure of Slicer's "Segmentation category and
# type - DICOM master list"; it has no code for a resection cavity, which therefore carries no terminology).
LABEL_COLORS = {"Necrosis": (0.85, 0.75, 0.85), "Edema": (0.55, 0.88, 0.89), "Enhancing tumor": (0.98, 0.55, 0.10),
                "Resection cavity": (0.25, 0.35, 0.80)}
_LABEL_TYPES = {
    "Necrosis": ("6574001", "SCT", "Necrosis"),
    "Edema": ("79654002", "SCT", "Edema"),
    "Enhancing tumor": ("108369006", "SCT", "Neoplasm"),
    "Resection cavity": None,
}


def segment_terminology(name: str) -> str:
    """The serialized Slicer terminology entry of a target segment ("GTV", "CTV standard", "CTV forecast")."""
    value, scheme, meaning = _TARGET_TYPES[name]
    return slicer.vtkSlicerTerminologiesModuleLogic.SerializeTerminologyEntry(
        "DICOM Radiotherapy Targets", "130041", "DCM", "RT Target", value, scheme, meaning, "", "", "",
        "Anatomic codes - DICOM master list", "12738006", "SCT", "Brain", "", "", "")


def label_terminology(name: str) -> str | None:
    """The serialized Slicer terminology entry of a label segment (a name of :data:`LABEL_SEGMENTS`), or None for
    the resection cavity (no code in the DICOM master list)."""
    code = _LABEL_TYPES[name]
    if code is None:
        return None
    value, scheme, meaning = code
    return slicer.vtkSlicerTerminologiesModuleLogic.SerializeTerminologyEntry(
        "Segmentation category and type - DICOM master list", "49755003", "SCT", "Morphologically Altered Structure",
        value, scheme, meaning, "", "", "", "Anatomic codes - DICOM master list", "12738006", "SCT", "Brain", "", "",
        "")


def probability_color_table(scene: slicer.vtkMRMLScene) -> slicer.vtkMRMLColorTableNode:
    """The scene's 256-entry probability color table (created once, then reused), mapping [0, 1]."""
    existing = scene.GetFirstNodeByName(PROBABILITY_COLOR_TABLE)
    if existing is not None and existing.IsA("vtkMRMLColorTableNode"):
        return existing
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", PROBABILITY_COLOR_TABLE)
    table.SetTypeToUser()
    table.SetNumberOfColors(256)
    positions = np.array([a[0] for a in _PROBABILITY_ANCHORS])
    colors = np.array([a[1] for a in _PROBABILITY_ANCHORS])
    for i, x in enumerate(np.linspace(0.0, 1.0, 256)):
        rgb = [float(np.interp(x, positions, colors[:, c])) for c in range(3)]
        table.SetColor(i, f"P={x:.3f}", *rgb, 1.0)
    table.GetLookupTable().SetRange(0.0, 1.0)
    return table


def show_as_probability(volumeNode: slicer.vtkMRMLScalarVolumeNode, maximum: float = 1.0) -> None:
    """Display a probability-like volume with the probability color table and a fixed 0..``maximum`` window."""
    scene = volumeNode.GetScene()
    if volumeNode.GetDisplayNode() is None:
        volumeNode.CreateDefaultDisplayNodes()
    display = volumeNode.GetDisplayNode()
    display.SetAndObserveColorNodeID(probability_color_table(scene).GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, float(maximum))


def day_label(day: float | None) -> str:
    """" day 95" (days, integer when whole) or "" when the day is unknown."""
    if day is None:
        return ""
    day = float(day)
    return f" day {int(day)}" if day.is_integer() else f" day {day:g}"


def subject_hierarchy_item(node: slicer.vtkMRMLNode) -> int:
    """The subject hierarchy item of ``node``, created under the scene item when missing (Slicer's Subject
    Hierarchy module does that for every new node; the bare slicer-core scene does not)."""
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(node.GetScene())
    item = shNode.GetItemByDataNode(node)
    return item or shNode.CreateItem(shNode.GetSceneItemID(), node)


def place_under(node: slicer.vtkMRMLNode, parentItem: int) -> None:
    """Move ``node``'s subject hierarchy item under ``parentItem``."""
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(node.GetScene())
    shNode.SetItemParent(subject_hierarchy_item(node), parentItem)


def place_next_to(outputNode: slicer.vtkMRMLNode, inputNode: slicer.vtkMRMLNode | None) -> None:
    """Put ``outputNode`` under the patient's study of ``inputNode`` in the subject hierarchy: the study that
    holds the input, else the input's parent folder or patient. Nothing moves when the input has no item."""
    if inputNode is None or outputNode.GetScene() is None:
        return
    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(outputNode.GetScene())
    inputItem = shNode.GetItemByDataNode(inputNode)
    if not inputItem:
        return
    outputItem = subject_hierarchy_item(outputNode)
    study = shNode.GetItemAncestorAtLevel(inputItem, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMLevelStudy())
    parent = study or shNode.GetItemParent(inputItem)
    if parent and parent != shNode.GetSceneItemID():
        shNode.SetItemParent(outputItem, parent)
