"""The example forecaster of docs/forecasters.md plugs in through the registry alone and runs end to end:
optional outputs absent -> no displacement or FLAIR file, progress fractions in [0, 1]."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from gliomaforecast.forecast import run_forecast
from gliomaforecast.output.writer import write_forecast
from gliomaforecast.forecasters import registry

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "Resources" / "SampleData" / "sample_patient" / "case.json"


@pytest.fixture
def margin_registered(monkeypatch):
    doc = (REPO / "docs" / "forecasters.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    module = types.ModuleType("gliomaforecast.forecasters.margin")
    exec(compile(blocks[0], "docs/forecasters.md", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "gliomaforecast.forecasters.margin", module)
    line = eval(blocks[1].strip().rstrip(","), {"ForecasterEntry": registry.ForecasterEntry})
    monkeypatch.setattr(registry, "REGISTRY", registry.REGISTRY + (line,))
    return line


def test_the_documented_example_forecaster_runs_through_the_registry(margin_registered, tmp_path: Path) -> None:
    reports: list[tuple[float, str]] = []
    fc = run_forecast(SAMPLE, 351.0, "margin", samples=2, n_bootstrap=5,
                      progress=lambda f, m: reports.append((f, m)))
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any("signed distance of the last GTV" in m for _, m in reports)
    gtv = fc.gtv
    grown = fc.output.probability > 0.5
    assert grown[gtv].all() and grown.sum() > gtv.sum()  # 6 mm of growth over 120 days
    assert fc.output.image is None and fc.output.displacement is None
    files = {p.name for p in write_forecast(fc, tmp_path / "out")}
    assert "displacement.nii.gz" not in files and not any(n.startswith("flair_") for n in files)
    assert {"probability_d351.nii.gz", "ctv_forecast.nii.gz", "forecast.json"} <= files
    assert np.isclose(fc.ctv_forecast.sum(), fc.ctv_standard.sum(), atol=0)
