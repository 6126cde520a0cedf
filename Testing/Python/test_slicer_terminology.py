"""The CLI's targets.seg.nrrd carries the same DICOM terminology as Slicer's own serialisation, and
Slicer's storage node reads it back as GTV / CTV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vtk

from GliomaForecastLib.conventions import segment_terminology
from GliomaForecastLib.scene import headless_scene
from gliomaforecast.output.record import SEGMENT_TERMS
from gliomaforecast.geometry import Grid
from gliomaforecast.io.images import write_segmentation


@pytest.mark.parametrize("name", ["GTV", "CTV standard", "CTV forecast"])
def test_core_terms_equal_slicer_serialisation(name: str) -> None:
    assert SEGMENT_TERMS[name] == f"TerminologyEntry:{segment_terminology(name)}|"


def test_storage_node_reads_the_target_terminology(tmp_path: Path) -> None:
    grid = Grid.identity((4, 5, 6), (2.0, 1.0, 1.0))
    gtv = np.zeros(grid.shape, bool)
    gtv[1:3, 1:4, 1:4] = True
    ctv = np.zeros(grid.shape, bool)
    ctv[0:4, 0:5, 0:5] = True
    write_segmentation(tmp_path / "t.seg.nrrd", {"GTV": gtv, "CTV standard": ctv}, grid, terminology=SEGMENT_TERMS)
    scene = headless_scene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(tmp_path / "t.seg.nrrd"))
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    tags = {}
    for i in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(i)
        holder = vtk.reference("")
        segment.GetTag("TerminologyEntry", holder)
        tags[segment.GetName()] = str(holder)
    assert "228791009^Gross Tumor Volume" in tags["GTV"]
    assert "228792002^Clinical Target Volume" in tags["CTV standard"]
