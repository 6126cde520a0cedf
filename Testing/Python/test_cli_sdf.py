"""The `gliomaforecast sdf` command: output geometry and one-line errors with exit code 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ball, oblique_grid
from gliomaforecast import sdf
from gliomaforecast.cli import main
from gliomaforecast.io.images import read_image, write_image


def test_sdf_cli_writes_probability_on_the_input_grid(tmp_path: Path, capsys) -> None:
    grid = oblique_grid((10, 16, 16), (5.0, 1.0, 1.0))
    gtv = ball(grid.shape, (5, 8, 8), 4.0, grid.spacing)
    write_image(tmp_path / "gtv.nrrd", gtv.astype(np.uint8), grid)
    assert main(["sdf", "--mask", str(tmp_path / "gtv.nrrd"), "--out", str(tmp_path / "p.nrrd"), "--mu", "10"]) == 0
    prob, got = read_image(tmp_path / "p.nrrd")
    assert got == grid
    np.testing.assert_allclose(prob, sdf.tumor_probability(gtv, grid.spacing, mu=10.0), atol=1e-7)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("args,match", [
    (["--mask", "{d}/missing.nii.gz"], "missing.nii.gz: gtv: file not found"),
    (["--mask", "{d}/empty.nii.gz"], "empty.nii.gz: gtv: mask is empty"),
    (["--mask", "{d}/labels.nii.gz"], "labels.nii.gz: gtv: mask is not binary"),
    (["--mask", "{d}/gtv.nii.gz", "--beta", "-1"], "--beta: must be a positive slope"),
    (["--mask", "{d}/gtv.nii.gz", "--out", "{d}/gtv.nii.gz"], "refusing to overwrite an input"),
    (["--mask", "{d}/gtv.nii.gz", "--out", "{d}/out.mha"], "out.mha: format: unsupported file type"),
])
def test_sdf_cli_bad_input(tmp_path: Path, args, match: str) -> None:
    grid = oblique_grid()
    write_image(tmp_path / "gtv.nii.gz", ball(grid.shape, (3, 4, 5), 3.0, grid.spacing).astype(np.uint8), grid)
    write_image(tmp_path / "empty.nii.gz", np.zeros(grid.shape, np.uint8), grid)
    write_image(tmp_path / "labels.nii.gz", np.arange(np.prod(grid.shape)).reshape(grid.shape) % 4, grid)
    before = sorted(os.listdir(tmp_path))
    argv = [a.format(d=tmp_path) for a in args]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out.nii.gz")]
    proc = subprocess.run([sys.executable, "-m", "gliomaforecast", "sdf", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert re.search(match, lines[0]), lines[0]
    assert sorted(os.listdir(tmp_path)) == before  # nothing written
