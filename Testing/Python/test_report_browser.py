"""report.html renders in a real browser: Debian's headless Chromium loads the page with every embedded image
decoded, and a full-page screenshot is taken (kept under the test's tmp folder for a look). Skipped only where
no `chromium` is installed (.ci/run installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from conftest import ball
from gliomaforecast.forecast import run_forecast
from gliomaforecast.geometry import Grid
from gliomaforecast.io.images import write_image
from gliomaforecast.output.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
# appended to a copy of the page only: reports, once the page has loaded, how many images decoded
_PROBE = ("<script>window.addEventListener('load', () => { const im = [...document.images]; "
          "const ok = im.filter(i => i.complete && i.naturalWidth > 0).length; "
          "document.body.setAttribute('data-images', ok + '/' + im.length); });</script>")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def case_path(tmp_path_factory) -> Path:
    """A three-scan case of a growing ball (days 0, 60, 120) on a 32 x 32 x 16 grid at 2 mm."""
    folder = tmp_path_factory.mktemp("case")
    grid = Grid.identity((16, 32, 32), (2.0, 2.0, 2.0))
    rng = np.random.default_rng(0)
    tps = []
    for i, radius in enumerate((5.0, 7.0, 9.0)):
        write_image(folder / f"d{i}_flair.nii.gz", rng.normal(100, 5, grid.shape).astype(np.float32), grid)
        write_image(folder / f"d{i}_gtv.nii.gz", ball(grid.shape, (8, 16, 16), radius, grid.spacing).astype(np.uint8),
                    grid)
        tps.append({"day": 60 * i, "images": {"flair": f"d{i}_flair.nii.gz"}, "gtv": f"d{i}_gtv.nii.gz"})
    write_image(folder / "brain.nii.gz", np.ones(grid.shape, np.uint8), grid)
    path = folder / "case.json"
    path.write_text(json.dumps({"schema": "gliomaforecast.case/1", "patient_id": "BROWSER-1", "rt_start_day": 21,
                                "timepoints": tps, "brain_mask": "brain.nii.gz"}))
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory, case_path: Path) -> Path:
    out = tmp_path_factory.mktemp("report")
    fc = run_forecast(case_path, 200.0, "evolution-field", n_bootstrap=10, seed=3, samples=3)
    return write_report(fc, out)[-1]


def test_chromium_loads_the_report_with_every_image(report: Path, tmp_path: Path) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    run = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'data-images="(\d+)/(\d+)"', run.stdout)
    assert found, run.stdout[:500]
    assert found.group(1) == found.group(2) == "4"  # overlays, volumes, growth, preparation: all decoded
    assert "Research use only, not for clinical decisions" in run.stdout


def test_chromium_screenshot_shows_the_figures(report: Path, tmp_path: Path) -> None:
    shot = report.parent / "report_screenshot.png"
    run = _chromium(tmp_path, "--window-size=1200,2600", f"--screenshot={shot}", report.as_uri())
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2600, 1200)
    # the page is not blank: the figures bring many distinct colours (a text-only page has a handful)
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 2000
    # the notice box's border (#a00) is drawn near the top of the page
    top = (pixels[:400] * 255).astype(int)
    assert np.any((abs(top[..., 0] - 170) < 20) & (top[..., 1] < 30) & (top[..., 2] < 30))
