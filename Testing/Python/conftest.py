"""Shared pytest fixtures: small synthetic grids and cases written to tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gliomaforecast.geometry import Grid
from gliomaforecast.io.images import write_image

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CASE = REPO / "Resources" / "SampleData" / "sample_patient" / "case.json"


def oblique_grid(shape=(6, 8, 10), spacing=(5.0, 0.9, 1.1)) -> Grid:
    rot = Rotation.from_euler("xyz", [10, -20, 35], degrees=True).as_matrix()
    return Grid(shape, spacing, (-12.345, 67.89, -3.21), tuple(rot.ravel()))


def ball(shape, center, radius_mm, spacing) -> np.ndarray:
    zz, yy, xx = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    c = [ci * s for ci, s in zip(center, spacing)]
    return (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= radius_mm**2


@pytest.fixture
def make_case(tmp_path: Path):
    """Write a small two-or-more-timepoint case; returns (manifest path, grid). Keyword overrides
    change the manifest dict before it is written."""

    def _make(n_timepoints: int = 3, grid: Grid | None = None, **overrides) -> tuple[Path, Grid]:
        grid = grid or Grid.identity((12, 20, 20), (2.0, 2.0, 2.0))
        rng = np.random.default_rng(0)
        tps = []
        for i in range(n_timepoints):
            flair = rng.normal(100, 5, grid.shape).astype(np.float32)
            gtv = ball(grid.shape, (6, 10, 10), 4.0 + 2.0 * i, grid.spacing)
            write_image(tmp_path / f"d{i}_flair.nii.gz", flair, grid)
            write_image(tmp_path / f"d{i}_gtv.nii.gz", gtv.astype(np.uint8), grid)
            tps.append({"day": 60 * i, "images": {"flair": f"d{i}_flair.nii.gz"}, "gtv": f"d{i}_gtv.nii.gz"})
        write_image(tmp_path / "dose.nii.gz", np.full(grid.shape, 2.0, np.float32), grid)
        write_image(tmp_path / "brain.nii.gz", np.ones(grid.shape, np.uint8), grid)
        manifest = {"schema": "gliomaforecast.case/1", "patient_id": "T-1", "rt_start_day": 21,
                    "timepoints": tps, "dose": "dose.nii.gz", "brain_mask": "brain.nii.gz"}
        manifest.update(overrides)
        path = tmp_path / "case.json"
        path.write_text(json.dumps(manifest))
        return path, grid

    return _make
