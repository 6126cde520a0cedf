"""The RT dose is declared, not implied (issue 17, item 4): the registry says which forecasters read it
(``uses_dose``), the `forecast` help, forecast.json (``inputs.dose_used`` with the reason) and the panel's dose
tooltip say so, and a forecaster that does not read it gives identical outputs with and without it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from gliomaforecast.cli import main
from gliomaforecast.forecast import run_forecast
from gliomaforecast.output.writer import write_forecast
from gliomaforecast.forecasters import REGISTRY, dose_note, dose_readers

REPO = Path(__file__).resolve().parents[2]


def test_the_registry_declares_who_reads_the_dose() -> None:
    assert all(isinstance(e.uses_dose, bool) for e in REGISTRY)
    assert set(dose_readers()) == {e.name for e in REGISTRY if e.uses_dose}
    for name in ("evolution-field", "evolution", "persistence"):  # none of these reads it
        assert name not in dose_readers()
    note = dose_note()
    assert all(name in note for name in dose_readers())


def test_forecast_help_says_which_forecasters_read_the_dose(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["forecast", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert " ".join(dose_note().split()) in help_text


@pytest.mark.parametrize("forecaster", ["persistence", "evolution-field"])
def test_outputs_do_not_depend_on_an_unread_dose_and_forecast_json_says_so(make_case, tmp_path: Path,
                                                                           forecaster: str) -> None:
    with_dose, _ = make_case(3)
    manifest = json.loads(with_dose.read_text())
    manifest.pop("dose")
    without = with_dose.with_name("case_without_dose.json")
    without.write_text(json.dumps(manifest))
    a = run_forecast(with_dose, 150.0, forecaster, n_bootstrap=10, samples=2)
    b = run_forecast(without, 150.0, forecaster, n_bootstrap=10, samples=2)
    np.testing.assert_array_equal(a.output.probability, b.output.probability)
    np.testing.assert_array_equal(a.ctv_forecast, b.ctv_forecast)
    write_forecast(a, tmp_path / "a")
    write_forecast(b, tmp_path / "b")
    ra = json.loads((tmp_path / "a" / "forecast.json").read_text())["inputs"]
    rb = json.loads((tmp_path / "b" / "forecast.json").read_text())["inputs"]
    assert ra["dose_used"] is False and f"the {forecaster} forecaster does not read it" in ra["dose_note"]
    assert rb["dose_used"] is False and rb["dose_note"] == "no RT dose given"
    page = (tmp_path / "a" / "report.html").read_text(encoding="utf-8")
    assert "does not read it" in page


def test_the_panel_dose_tooltip_does_not_claim_the_forecaster_uses_it() -> None:
    ui = ET.parse(REPO / "Resources" / "UI" / "GliomaForecast.ui").getroot()
    selector = next(w for w in ui.iter("widget") if w.get("name") == "doseSelector")
    tip = next(p for p in selector.findall("property") if p.get("name") == "toolTip").find("string").text
    assert "used by the forecaster" not in tip and "recorded" in tip
    # at run time the widget puts the registry's own sentence there
    source = (REPO / "GliomaForecast" / "GliomaForecast.py").read_text()
    assert "self.ui.doseSelector.toolTip = doseTooltip()" in source
