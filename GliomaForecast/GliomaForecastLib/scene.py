"""A ready MRML scene outside the Slicer application (the slicer-core wheel): what Slicer does at start-up for
the nodes this module uses. Inside Slicer, use ``slicer.mrmlScene`` instead."""

from __future__ import annotations

import slicer

_LOGICS: list = []  # scene logics stay alive as long as the process


def headless_scene() -> "slicer.vtkMRMLScene":
    """A new MRML scene with Slicer's default color tables and the segmentation converter rules (registered once
    per process by the Segmentations logic, as Slicer does at start-up), set as ``slicer.mrmlScene``."""
    scene = slicer.vtkMRMLScene()
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLScene(scene)
    _LOGICS.append(colors)
    if not slicer.vtkSegmentationConverterFactory.GetInstance().GetConverterRules():
        segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
        segmentations.SetMRMLScene(scene)  # registers the closed-surface <-> labelmap converter rules
        _LOGICS.append(segmentations)
    slicer.mrmlScene = scene
    return scene
