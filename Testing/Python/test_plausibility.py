"""Implausible forecasts are flagged (issue 17, item 5): growth bands and forecast volumes capped by the brain,
warnings in forecast.json, the command's summary and the report for a volume over half the brain, a horizon beyond
the forecaster's validated one, growth parameters at their bounds and an unobserved bump of the growth curve; the
evolution forecasters' image is written as a warped FLAIR, not a forecast."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE_CASE
from gliomaforecast.io.case import load_case
from gliomaforecast.cli import main
from gliomaforecast.forecast import fit_case_growth, forecast_tumor_ml, run_forecast
from gliomaforecast.forecasters import entry
from gliomaforecast.growth.checks import parameters_at_bounds, unobserved_bump
from gliomaforecast.growth.fit import GrowthFit, fit_growth
from gliomaforecast.growth.model import GrowthParams, burden
from gliomaforecast.growth.checks import cap_growth
from gliomaforecast.plausibility import BRAIN_FRACTION_WARNING, forecast_warnings


@pytest.fixture(scope="module")
def day400(tmp_path_factory) -> tuple[Path, str]:
    """The issue's case: the sample patient, evolution forecaster, day 400 (169 days after the last scan)."""
    out = tmp_path_factory.mktemp("f400") / "out"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["forecast", str(SAMPLE_CASE), "--forecaster", "evolution", "--day", "400", "--samples", "4",
                     "--out", str(out)])
    assert code == 0
    return out, buffer.getvalue()


def test_band_and_volumes_are_capped_by_the_brain(day400) -> None:
    out, _ = day400
    brain_ml = float(load_case(SAMPLE_CASE).brain_mask().sum() * load_case(SAMPLE_CASE).grid.voxel_volume_ml)
    growth = json.loads((out / "growth.json").read_text())
    prediction = growth["predictions"][0]
    assert growth["cap"] == pytest.approx(brain_ml)
    assert prediction["upper_97.5"] == pytest.approx(brain_ml)  # 2674 mL before the cap
    record = json.loads((out / "forecast.json").read_text())
    assert record["volumes_ml"]["forecast_tumor"] <= brain_ml


def test_warnings_in_forecast_json_summary_and_report(day400) -> None:
    out, printed = day400
    warnings = json.loads((out / "forecast.json").read_text())["warnings"]
    text = "\n".join(warnings)
    assert "implausible volume: the forecast tumour at day 400 is 1274 mL, 74% of the brain" in text
    assert "95% band at day 400 reaches the brain volume and is capped" in text
    assert "horizon 169 days is beyond the 60 days evolution was validated for" in text
    assert "decay_rate = 0.2 1/day at its upper bound" in text
    # the four-scan fit holds delay and slope at the population prior: no unobserved bump to flag any more (the
    # check itself: test_unobserved_bump)
    assert "a bump no scan observed" not in text
    for line in warnings:
        assert f"WARNING: {line}" in printed
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<h2>Warnings</h2>" in page and page.count("<li>") >= len(warnings)


def test_the_warped_flair_is_named_as_such(day400) -> None:
    out, _ = day400
    names = {p.name for p in out.iterdir()}
    assert "flair_warped_d400.nii.gz" in names and "flair_d400.nii.gz" not in names
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "a registration aid, not a forecast of the FLAIR" in page


def test_cap_growth_clips_median_band_and_draws() -> None:
    fit = fit_growth([0.0, 50.0, 100.0], [10.0, 30.0, 90.0], n_bootstrap=20)
    assert fit.predict([400.0])[2][0] > 1000.0
    capped = cap_growth(fit, 500.0)
    med, lo, hi = (v[0] for v in capped.predict([400.0]))
    assert hi == 500.0 and med <= 500.0 and capped.bootstrap_curves([400.0]).max() == 500.0
    assert capped.predict([50.0])[0][0] == fit.predict([50.0])[0][0]  # below the cap nothing changes
    assert cap_growth(fit, None) is fit


def test_parameters_at_bounds() -> None:
    grows = fit_growth([0.0, 10.0, 20.0], [1.0, 1.0 * np.exp(2.5), 1.0 * np.exp(5.0)], n_bootstrap=5)
    found = parameters_at_bounds(grows)  # 0.25 / day wanted, the exponential bound is 0.1 / day
    assert [(b.name, b.side, b.bound) for b in found] == [("growth_rate", "upper", 0.1)]
    calm = fit_growth([0.0, 50.0, 100.0], [10.0, 20.0, 40.0], n_bootstrap=5)
    assert parameters_at_bounds(calm) == []
    sample = fit_case_growth(load_case(SAMPLE_CASE), n_bootstrap=20)
    assert [b.name for b in parameters_at_bounds(sample)] == ["decay_rate"]


def _rt_fit(delay: float) -> GrowthFit:
    params = GrowthParams(growth_rate=0.01, decay_rate=0.05, delay=delay, slope=0.1, surviving_fraction=0.1,
                          initial_burden=30.0)
    days = np.array([0.0, 90.0, 180.0])
    return GrowthFit(days=days, burdens=burden(days, params, 20.0), rt_start_day=20.0, model="radiotherapy", note="",
                     params=params, free=(), fixed={}, bootstrap=None, n_bootstrap=0, noise=0.0, seed=0)


def test_unobserved_bump() -> None:
    bump = unobserved_bump(_rt_fit(delay=30.0), 200.0)  # the dying part grows 30 days after RT start, unseen
    assert bump is not None and 20.0 < bump[0] < 90.0 and bump[1] > 1.5 * bump[2]
    assert unobserved_bump(_rt_fit(delay=0.0), 200.0) is None
    rising = fit_growth([0.0, 50.0, 100.0], [10.0, 20.0, 40.0], n_bootstrap=5)
    assert unobserved_bump(rising, 400.0) is None


def test_validated_horizons_and_quiet_forecasts(make_case) -> None:
    path, _ = make_case(n_timepoints=3)
    fc = run_forecast(path, 150.0, "persistence", n_bootstrap=10)  # 30 days after the last scan, small tumour
    warnings = forecast_warnings(fc)
    assert not any("horizon" in w or "implausible" in w for w in warnings)
    late = dataclasses.replace(fc, forecaster="evolution-field", target_day=300.0)
    assert any("horizon 180 days is beyond the 60 days evolution-field" in w for w in forecast_warnings(late))
    validated = entry("evolution-field").validated_days  # the warning starts just past the validated horizon
    for days_after, warned in ((validated, False), (validated + 0.5, True)):
        at = dataclasses.replace(fc, forecaster="evolution-field", target_day=120.0 + days_after)
        assert any("beyond the" in w for w in forecast_warnings(at)) == warned, days_after
    never = dataclasses.replace(fc, target_day=120.0 + 3000.0)  # persistence has no validated horizon
    assert not any("beyond the" in w for w in forecast_warnings(never))
    assert forecast_tumor_ml(fc) < BRAIN_FRACTION_WARNING * fc.case.brain_mask().sum() * fc.case.grid.voxel_volume_ml


def test_one_warnings_pass_per_written_forecast(make_case, tmp_path: Path, monkeypatch) -> None:
    """Issue 28: the forecast command computes the warnings once per forecast; forecast.json, the report and the
    summary show that one list."""
    import html
    import importlib
    import sys

    import gliomaforecast.plausibility as plausibility

    for name in ("commands.forecast", "output.writer", "output.report", "output.record"):
        importlib.import_module(f"gliomaforecast.{name}")
    original, calls = plausibility.forecast_warnings, []

    def counted(fc) -> list[str]:
        calls.append(fc)
        return original(fc)

    for module in [m for n, m in sys.modules.items() if n.startswith("gliomaforecast")]:
        if getattr(module, "forecast_warnings", None) is original:
            monkeypatch.setattr(module, "forecast_warnings", counted)
    path, _ = make_case()
    out, buffer = tmp_path / "out", io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["forecast", str(path), "--forecaster", "evolution", "--day", "200", "--samples", "2",
                     "--out", str(out)]) == 0
    assert len(calls) == 1
    warnings = json.loads((out / "forecast.json").read_text())["warnings"]
    assert warnings == original(calls[0]) and any("horizon 80 days is beyond" in w for w in warnings)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert all(f"<li>{html.escape(w)}</li>" in page and f"WARNING: {w}" in buffer.getvalue() for w in warnings)
