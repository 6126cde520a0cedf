"""The forecast report: PNG figures and one self-contained ``report.html``.

:func:`write_report` writes into an existing folder:

- ``growth.png``: the growth curve with its 95% bootstrap band and the target day (``growth_plot``);
- ``overlays.png``: axial slices of the last FLAIR with the forecast probability, the contours of the last
  GTV and of both CTVs, and the uncertainty when the forecaster gives one;
- ``volumes.png``: the target volumes and the growth model's volume at the target day (mL);
- ``scenario_<name>.png``: each alternative forecast (``ForecasterOutput.scenarios``, e.g. responder and
  progressor), shown side by side with its tumour volume;
- ``preparation.png``: each later session's edges on the planning scan, the brain mask and the tissue maps
  (:mod:`.preparation_figure`), when the first scan has an MR image;
- ``report.html``: a research-use notice, the warnings (:mod:`plausibility`), the figures embedded as base64
  PNG (no external file, link or script), the volumes (mL), the growth parameters with their 95% band (those at
  a bound marked), the inputs (file names relative to the case folder, never absolute paths: they can carry a
  patient's name; days, grid), whether the RT dose was read, the forecaster and its models (sha256, execution
  provider), the seed and the notes; which of the registration, the brain mask and the tissue maps came from the
  user and which were derived (``gliomaforecast prepare``), with each session's registration quality.

Same forecast -> identical bytes (no timings or dates in the report; PNGs without software metadata).
Volumes are in mL, days since the case's day 0, distances in mm.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Container
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..evaluation import dice, volume_ml
from ..forecast import Forecast, forecast_tumor_ml, scenario_tumor_ml
from ..geometry import Grid
from ..growth import PARAM_UNITS
from ..growth.checks import parameters_at_bounds
from ..io.shown_paths import shown_path
from ..plausibility import forecast_warnings
from ..preparation.sessions import WARN_QUALITY
from ..targets.standard_plan import DESCRIPTIONS, plan_label
from .figures import axial_levels, plot_overlays, plot_volumes
from .preparation_figure import plot_case_preparation
from .record import day_tag, dose_record, flair_file_name

N_LEVELS = 4

_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;
font-size:0.9em}th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #ddd}code{font-size:0.85em;word-break:break-all}
.notice{border:2px solid #a00;background:#fff0f0;padding:0.6em 1em;font-weight:bold}
.warnings{border:2px solid #c60;background:#fff8e6;padding:0.4em 1em 0.4em 2em}"""
NOTICE = (
    "Research use only, not for clinical decisions. GliomaForecast is not a medical device; its forecasts and "
    "target volumes have been evaluated on virtual patients only."
)


def report_volumes(forecast: Forecast) -> dict[str, float]:
    """The volumes of the report (mL): last GTV, forecast tumor (phi <= 0), both CTVs, their overlap and
    what each holds that the other does not."""
    spacing = forecast.case.grid.spacing
    std, fc = forecast.ctv_standard, forecast.ctv_forecast
    return {
        "GTV (last scan)": volume_ml(forecast.gtv, spacing),
        "forecast tumor (phi <= 0)": forecast_tumor_ml(forecast),
        "CTV standard": volume_ml(std, spacing),
        "CTV forecast": volume_ml(fc, spacing),
        "CTV overlap": volume_ml(std & fc, spacing),
        "CTV forecast only": volume_ml(fc & ~std, spacing),
        "CTV standard only": volume_ml(std & ~fc, spacing),
    }


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}g}"


def _table(header: list[str], rows: list[list[object]], numeric: Container[int] = frozenset()) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_esc(c)}</td>' if i in numeric else f"<td>{_esc(c)}</td>" for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{_esc(alt)}" src="data:image/png;base64,{data}"></p>'


def _inputs_rows(forecast: Forecast) -> list[list[object]]:
    case = forecast.case
    folder = case.path.parent if case.path else None

    def shown(path: str | Path | None) -> str:
        return shown_path(path, folder)

    rows: list[list[object]] = []
    for tp in case.timepoints:
        files = [f"{k}: {shown(p)}" for k, p in sorted(tp.images.items())]
        if tp.gtv is not None:
            files.append(f"gtv: {shown(tp.gtv)}")
        if tp.labels is not None:
            files.append(f"labels: {shown(tp.labels)}")
        rows.append([f"timepoint {tp.index}", f"day {tp.day:g}", "; ".join(files)])
    for name, path in (("dose", case.dose_path), ("brain mask", case.brain_mask_path)):
        rows.append([name, "", shown(path) if path else "not given"])
    for name, path in sorted(case.tissue_paths.items()):
        rows.append([f"tissue {name}", "", shown(path)])
    return rows


def _poor(quality: float | None) -> str:
    """A note for a registration quality below the warning level."""
    return f" (below {WARN_QUALITY:g}: check its edges)" if quality is not None and quality < WARN_QUALITY else ""


def _preparation_rows(forecast: Forecast) -> list[list[object]]:
    """Where the registration, the brain mask and the tissue maps came from (user or derived), with each registered
    session's quality (``Case.provenance``)."""
    prov = forecast.case.provenance()
    regs = prov["registration"]
    if isinstance(regs, str):
        rows: list[list[object]] = [["registration", regs.split(":")[0], regs.split(": ", 1)[-1]]]
    else:
        rows = [
            [
                f"registration, timepoint {r['timepoint']}",
                r["source"],
                f"{r['kind']}, {r['moving']} onto {r['fixed']}, quality {_num(r['quality'], 2)}" + _poor(r["quality"]),
            ]
            for r in regs
        ]
    for key, label in (("brain_mask", "brain mask"), ("tissue", "tissue maps")):
        record = prov[key]
        details = ", ".join(f"{k} {v}" for k, v in record.items() if k != "source")
        rows.append([label, record["source"], details])
    return rows


def _growth_rows(forecast: Forecast) -> list[list[object]]:
    units = dict(PARAM_UNITS, initial_burden="mL")
    bound = {b.name: b.side for b in parameters_at_bounds(forecast.growth)}
    return [
        [
            name,
            units[name],
            _num(s["value"]),
            _num(s["median"]),
            _num(s["lower_2.5"]),
            _num(s["upper_97.5"]),
            "fixed" if s["fixed"] else f"fitted, AT ITS {bound[name].upper()} BOUND" if name in bound else "fitted",
        ]
        for name, s in forecast.growth.parameter_summary().items()
    ]


def _scenarios_html(forecast: Forecast, figures: dict[str, Path]) -> str:
    """The alternative forecasts side by side (one column each) with their tumour volumes; empty without any."""
    scenarios = forecast.output.scenarios
    if not scenarios:
        return ""
    cells = "".join(
        f'<td style="width:{100 // len(scenarios)}%;vertical-align:top">{_esc(sc.label)}'
        f"{_img(figures[f'scenario {name}'], f'{name} forecast')}</td>"
        for name, sc in scenarios.items()
    )
    rows: list[list[object]] = [
        [sc.label, f"{scenario_tumor_ml(forecast, sc.probability):.2f}"] for sc in scenarios.values()
    ]
    rows.insert(0, ["main forecast (drives the targets)", f"{forecast_tumor_ml(forecast):.2f}"])
    return (
        "<h2>Outcome scenarios side by side</h2><p>Alternative forecasts for the same day; the target volumes "
        "come from the main forecast only.</p>"
        + f"<table><tr>{cells}</tr></table>"
        + _table(["forecast", "tumor (phi <= 0), mL"], rows, numeric={1})
    )


def _image_rows(forecast: Forecast) -> list[list[object]]:
    """The summary row of the forecaster's FLAIR: synthesized, or the last FLAIR warped; none without an image."""
    out = forecast.output
    if out.image is not None and out.image_kind == "synthesized":
        return [
            [
                "predicted FLAIR",
                f"{flair_file_name(forecast)}: synthesized by the {forecast.forecaster} "
                f"forecaster (its model card gives the held-out PSNR/SSIM against the last FLAIR)",
            ]
        ]
    if out.image is not None:
        return [
            [
                "warped FLAIR",
                f"flair_warped_{day_tag(forecast.target_day)}.nii.gz: the last FLAIR warped by the "
                f"forecaster's displacement, a registration aid, not a forecast of the FLAIR (on unseen virtual "
                f"patients it was further from the future FLAIR than the last FLAIR itself)",
            ]
        ]
    return []


def _summary_rows(forecast: Forecast) -> list[list[object]]:
    """The report's summary table: patient, target day (days), forecaster, seed, both CTVs, the growth model at the
    target day (mL, 95% band), the CTVs' Dice, the RT dose and the forecaster's FLAIR."""
    case, day = forecast.case, forecast.target_day
    last = case.timepoints[-1]
    med, lo, hi = (float(v[0]) for v in forecast.growth.predict([day]))
    return [
        ["patient", case.patient_id],
        ["case manifest", shown_path(case.path)],
        ["target day", f"{day:g} ({day - last.day:g} days after the last scan, day {last.day:g})"],
        ["RT start day", "not given" if case.rt_start_day is None else f"{case.rt_start_day:g}"],
        ["forecaster", forecast.forecaster],
        ["seed", forecast.seed],
        ["samples", forecast.samples],
        [
            "CTV standard",
            f"{plan_label(forecast.plan, forecast.margin_mm)}: {DESCRIPTIONS[forecast.plan]}, grown by "
            f"{forecast.margin_mm:g} mm inside the brain (docs/targets.md)",
        ],
        [
            "CTV forecast",
            f"iso-volumetric to the {forecast.plan} CTV standard: its seed + the voxels of highest "
            f"forecast probability",
        ],
        ["growth model at target day", f"{med:.2f} mL (95% band {lo:.2f}-{hi:.2f} mL)"],
        ["Dice(CTV standard, CTV forecast)", _num(dice(forecast.ctv_standard, forecast.ctv_forecast), 3)],
        ["RT dose", dose_record(forecast)["dose_note"]],
        *_image_rows(forecast),
    ]


def _grid_rows(grid: Grid) -> list[list[object]]:
    """The case grid: shape, spacing (mm), origin (LPS mm), direction and voxel volume (mm^3)."""
    return [
        ["shape (z, y, x)", " x ".join(str(s) for s in grid.shape)],
        ["spacing (z, y, x)", " x ".join(f"{s:g}" for s in grid.spacing) + " mm"],
        ["origin (x, y, z, LPS)", ", ".join(f"{o:g}" for o in grid.origin) + " mm"],
        ["direction", ", ".join(f"{d:g}" for d in grid.direction)],
        ["voxel volume", f"{grid.voxel_volume_ml * 1000:g} mm^3"],
    ]


def _models_html(forecast: Forecast) -> str:
    """The forecaster's models (id, version, file, sha256, execution provider), or a line saying it runs none."""
    models = [
        [m.get("id", ""), m.get("version", ""), m.get("file", ""), m.get("sha256", ""), m.get("provider", "")]
        for m in forecast.output.models
    ]
    if models:
        return _table(["id", "version", "file", "sha256", "provider"], models)
    return f"<p>The {_esc(forecast.forecaster)} forecaster runs no model.</p>"


def _notes_html(forecast: Forecast) -> str:
    """The forecaster's notes and the growth fit's (R^2, bootstrap refits, noise, seed) as a list."""
    fit = forecast.growth
    notes = list(forecast.output.notes) + [
        f"growth: {fit.note}; R^2 {_num(fit.r_squared, 3)}; {fit.n_bootstrap} bootstrap "
        f"refits, noise {fit.noise:g}, seed {fit.seed}"
    ]
    return "<h2>Notes</h2><ul>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>"


def _warnings_html(warnings: list[str]) -> str:
    """The plausibility warnings as a list, or a line saying there is none."""
    if warnings:
        return '<h2>Warnings</h2><ul class="warnings">' + "".join(f"<li>{_esc(w)}</li>" for w in warnings) + "</ul>"
    return "<p>No plausibility warning (docs/architecture.md lists the checks).</p>"


def render_html(forecast: Forecast, figures: dict[str, Path], warnings: list[str]) -> str:
    """The report page for ``forecast`` with the PNG ``figures`` (name -> file) embedded and its plausibility
    ``warnings`` (:func:`plausibility.forecast_warnings`)."""
    title = f"GliomaForecast report: {forecast.case.patient_id}, day {forecast.target_day:g}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="notice">{_esc(NOTICE)}</p>',
        _warnings_html(warnings),
        _table(["item", "value"], _summary_rows(forecast)),
        "<h2>Volumes (mL)</h2>",
        _table(["volume", "mL"], [[k, f"{v:.2f}"] for k, v in report_volumes(forecast).items()], numeric={1}),
        "<h2>Forecast on the last FLAIR</h2>",
        _img(figures["overlays"], "axial overlays"),
        _scenarios_html(forecast, figures),
        "<h2>Target volumes</h2>",
        _img(figures["volumes"], "target volumes"),
        "<h2>Growth model</h2>",
        _img(figures["growth"], "growth curve with 95% band"),
        _table(
            ["parameter", "unit", "fit", "bootstrap median", "2.5 %", "97.5 %", ""],
            _growth_rows(forecast),
            numeric={2, 3, 4, 5},
        ),
        "<h2>Inputs</h2>",
        _table(["input", "day", "files"], _inputs_rows(forecast)),
        "<h3>Preparation</h3>",
        _table(["item", "source", "details"], _preparation_rows(forecast)),
        _img(figures["preparation"], "each session's edges on the planning scan; brain mask and tissue maps")
        if "preparation" in figures
        else "<p>No MR image in the case: no preparation figure.</p>",
        "<h3>Grid</h3>",
        _table(["", "value"], _grid_rows(forecast.case.grid)),
        "<h2>Models</h2>",
        _models_html(forecast),
        _notes_html(forecast),
        f"<p><small>gliomaforecast {_esc(__version__)}</small></p>",
        "</body></html>",
        "",
    ]
    return "\n".join(parts)


def _background(forecast: Forecast) -> tuple[np.ndarray | None, str | None]:
    """The image the overlays are drawn on and its modality: the last scan's FLAIR, else its T1ce, T2 or T1; (None,
    None) when it has none (a blank background)."""
    last = forecast.case.timepoints[-1]
    modality = next((m for m in ("flair", "t1ce", "t2", "t1") if m in last.images), None)
    return (None if modality is None else forecast.case.image(last, modality)), modality


def _main_figures(
    forecast: Forecast, out_dir: Path, background: np.ndarray | None, modality: str | None, levels: list[int]
) -> dict[str, Path]:
    """growth.png (the growth curve, 95% band, target day), overlays.png (the forecast on the ``background`` at the
    axial ``levels``) and volumes.png (the target volumes, mL)."""
    from ..growth.plot import plot_growth

    case, day = forecast.case, forecast.target_day
    return {
        "growth": plot_growth(
            forecast.growth,
            out_dir / "growth.png",
            forecast_days=[day],
            title=f"{case.patient_id}: {forecast.growth.model} model (GTV volume)",
        ),
        "overlays": plot_overlays(
            out_dir / "overlays.png",
            background,
            forecast.output.probability,
            forecast.output.uncertainty,
            (forecast.gtv, forecast.ctv_standard, forecast.ctv_forecast),
            case.grid,
            levels,
            f"{case.patient_id}: {forecast.forecaster} forecast for day {day:g} "
            f"on the {modality or 'blank'} of day {case.timepoints[-1].day:g}",
        ),
        "volumes": plot_volumes(
            out_dir / "volumes.png",
            {
                k: v
                for k, v in report_volumes(forecast).items()
                if k in ("GTV (last scan)", "forecast tumor (phi <= 0)", "CTV standard", "CTV forecast", "CTV overlap")
            },
            tuple(float(v[0]) for v in forecast.growth.predict([day])),
            f"{case.patient_id}: volumes at day {day:g}",
        ),
    }


def _scenario_figures(
    forecast: Forecast, out_dir: Path, background: np.ndarray | None, modality: str | None, levels: list[int]
) -> dict[str, Path]:
    """scenario_<name>.png per alternative forecast: its probability on its synthesized FLAIR (else on the
    ``background``) with the last GTV, at the axial ``levels``."""
    return {
        f"scenario {name}": plot_overlays(
            out_dir / f"scenario_{name}.png",
            background if scenario.image is None else scenario.image,
            scenario.probability,
            None,
            (forecast.gtv,),
            forecast.case.grid,
            levels,
            f"{scenario.label}: forecast for day {forecast.target_day:g} on its "
            f"{'synthesized FLAIR' if scenario.image is not None else modality or 'blank'}",
        )
        for name, scenario in forecast.output.scenarios.items()
    }


def write_report(forecast: Forecast, out_dir: Path, warnings: list[str] | None = None) -> list[Path]:
    """Write growth.png, overlays.png, volumes.png, scenario_<name>.png, preparation.png (when the first scan has an
    MR image) and report.html into the existing folder
    ``out_dir``; return their paths (in that order). ``warnings``: the forecast's plausibility warnings when computed
    already (None: computed here)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError(out_dir, "output", "report folder does not exist")
    background, modality = _background(forecast)
    levels = axial_levels(forecast.ctv_forecast | forecast.gtv, N_LEVELS)
    figures = _main_figures(forecast, out_dir, background, modality, levels)
    figures.update(_scenario_figures(forecast, out_dir, background, modality, levels))
    preparation = plot_case_preparation(forecast.case, out_dir / "preparation.png")
    if preparation is not None:
        figures["preparation"] = preparation
    page = out_dir / "report.html"
    warnings = forecast_warnings(forecast) if warnings is None else warnings
    page.write_text(render_html(forecast, figures, warnings), encoding="utf-8")
    return [
        figures["growth"],
        figures["overlays"],
        figures["volumes"],
        *(figures[f"scenario {n}"] for n in forecast.output.scenarios),
        *([figures["preparation"]] if "preparation" in figures else []),
        page,
    ]
