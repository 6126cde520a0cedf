"""The leaderboard of an evaluation as markdown, generated from its summary.json (never typed by hand).

Tables: per forecaster and time-gap bin (days from the last input scan to the target) the number of scored
forecasts and the mean RMSE, BCE (nats), ECE, Dice of the tumor (phi <= 0) and HD95 (mm); for the forecasters that give
a FLAIR, its mean PSNR (dB) and SSIM against the target FLAIR beside the last FLAIR's (the baseline); then per
forecaster and recurrence definition the mean coverage of the forecast and the standard CTV with the paired Wilcoxon
p (one value per patient), and the same on the forecasts whose recurrence leaves the standard CTV; every
forecaster's HD95, RMSE and Dice against persistence's (paired Wilcoxon, one value per patient). With the run's
timings.json: per forecaster the forecasts timed, CPU seconds per forecast, wall seconds per patient and CPU minutes
in all, and the whole run's wall time.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..errors import InputError

BIN_METRICS = (
    ("rmse", "RMSE", 3),
    ("bce", "BCE", 3),
    ("ece", "ECE", 3),
    ("dice_tumor", "Dice", 2),
    ("hd95_mm", "HD95 mm", 1),
)
# The fields the tables print as numbers (each a number or null; horizon_days a list of numbers), checked before any
# table is built so that a string in one is an error naming the field, not a traceback.
SUMMARY_NUMBERS = frozenset(
    {m for m, _, _ in BIN_METRICS}
    | {"n_cases", "seed", "samples", "n_bootstrap", "margin_mm", "horizon_days", "n", "n_images", "n_defined"}
    | {"n_forecasts", "mean", "p_value", "median_difference"}
    | {"flair_psnr_db", "last_flair_psnr_db", "flair_ssim", "last_flair_ssim"}
)
TIMING_NUMBERS = frozenset(
    {"n_forecasts", "total_cpu_s", "mean_cpu_s_per_forecast", "mean_s_per_patient", "wall_seconds", "jobs", "cpus"}
    | {"cpu_seconds_of_forecasts", "load_average_at_start", "load_average_at_end"}
)
START = "<!-- leaderboard:start -->"
END = "<!-- leaderboard:end -->"


def _f(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _cell(value: Any) -> str:
    """A name from summary.json (forecaster, gap bin, metric...) as markdown text: table pipes, HTML (so no
    ``<!-- leaderboard:... -->`` marker) and line breaks escaped."""
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`").split())


def _p(value: Any) -> str:
    return "-" if value is None else f"{value:.2g}"


def _not_number(value: Any) -> bool:
    """A string or a boolean (or a list holding one, as ``horizon_days`` might) where a number belongs; objects (the
    statistics of a metric in ``versus_persistence``) are walked into instead."""
    if isinstance(value, list):
        return any(_not_number(v) for v in value)
    return isinstance(value, (str, bool))


def check_numbers(data: dict, parts: tuple[str, ...], keys: frozenset[str]) -> None:
    """Every field named in ``keys`` under the top-level ``parts`` of ``data`` (an evaluation's summary.json or
    timings.json) holds a number or null; else an InputError naming the field (``forecasters.x.gap_bins.b.rmse``)."""
    if not isinstance(data, dict):
        return  # not an object: the table code reports it
    stack: list[tuple[str, Any]] = [(part, data[part]) for part in parts if part in data]
    for where, value in stack:  # the list grows while it is walked: no recursion
        if where in keys and _not_number(value):
            raise InputError(None, where, f"must be a number, got {str(value)[:40]!r}")
        if isinstance(value, dict):
            for key, item in value.items():
                if key in keys and _not_number(item):
                    raise InputError(None, f"{where}.{key}", f"must be a number, got {str(item)[:40]!r}")
                stack.append((f"{where}.{key}", item))
        elif isinstance(value, list):
            stack += [(f"{where}[{i}]", item) for i, item in enumerate(value)]


def plan_sentence(summary: dict) -> str:
    """How the run's standard plan was built: its convention and seed (``standard_plan`` of summary.json), or, for a
    summary written before conventions existed, the margin on the whole GTV (the flair convention)."""
    plan = summary.get("standard_plan")
    margin = summary["settings"]["margin_mm"]
    if plan is None:
        return f"standard plan: whole GTV + cavity + {margin:g} mm (flair convention; run before --plan existed)"
    if "convention" in plan:
        return f"standard plan `{_cell(plan['convention'])}`: {_cell(plan['seed'])} + {margin:g} mm"
    used = ", ".join(f"{n} forecasts `{_cell(c)}`" for c, n in plan["forecasts"].items())
    return f"standard plan `{_cell(plan['requested'])}` + {margin:g} mm ({used})"


def _run_sentence(summary: dict) -> str:
    """The run in one sentence: patients, protocol (gap range and pair rule for ``horizon``), seed, samples,
    bootstrap refits and the standard plan."""
    s = summary["settings"]
    horizon = s.get("horizon_days")
    protocol = summary.get("protocol", s.get("protocol", "last-scan"))
    what = f"protocol `{protocol}`" + (f", gaps {horizon[0]:g}-{horizon[1]:g} days" if protocol == "horizon" else "")
    if protocol == "horizon" and s.get("pairs", "all") != "all":
        what += f", pairs `{s['pairs']}` (one per patient and gap bin: the fewest inputs, then the earliest target)"
    return (
        f"{summary['n_cases']} patients, {what}, seed {s['seed']}, {s['samples']} samples, "
        f"{s['n_bootstrap']} bootstrap refits, {plan_sentence(summary)}."
    )


def _bin_table(summary: dict, bins: list[str]) -> list[str]:
    """Per gap bin and forecaster: the number of forecasts and the mean of :data:`BIN_METRICS`."""
    lines = [
        "| forecaster | gap bin (days) | n | " + " | ".join(h for _, h, _ in BIN_METRICS) + " |",
        "|---|---|---|" + "---|" * len(BIN_METRICS),
    ]
    for b in bins:
        for name, f in summary["forecasters"].items():
            row = f["gap_bins"][b]
            lines.append(
                f"| {_cell(name)} | {_cell(b)} | {row['n']} | "
                + " | ".join(_f(row[m], d) for m, _, d in BIN_METRICS)
                + " |"
            )
    return lines


def _image_table(summary: dict, bins: list[str]) -> list[str]:
    """Per gap bin and forecaster that gives a FLAIR: its mean PSNR (dB) and SSIM beside the last FLAIR's; no lines
    when no forecaster gives one."""
    imaged = [
        (b, name, f["gap_bins"][b])
        for b in bins
        for name, f in summary["forecasters"].items()
        if f["gap_bins"][b].get("n_images")
    ]
    if not imaged:
        return []
    return [
        "",
        "| forecaster | gap bin (days) | n | FLAIR PSNR dB | last FLAIR PSNR dB | FLAIR SSIM | last FLAIR SSIM |",
        "|---|---|---|---|---|---|---|",
    ] + [
        f"| {_cell(name)} | {_cell(b)} | {row['n_images']} | {_f(row['flair_psnr_db'], 2)} | "
        f"{_f(row['last_flair_psnr_db'], 2)} | {_f(row['flair_ssim'], 3)} | {_f(row['last_flair_ssim'], 3)} |"
        for b, name, row in imaged
    ]


def _coverage_table(summary: dict) -> list[str]:
    """Per forecaster and recurrence definition: the mean coverage of both CTVs with the Wilcoxon p, on all forecasts
    and on those whose recurrence leaves the standard CTV."""
    lines = [
        "",
        "| forecaster | recurrence | n (patients) | coverage forecast CTV | coverage standard CTV | "
        "Wilcoxon p | outside margin: n | forecast | standard | p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in summary["forecasters"].items():
        for definition, c in f["coverage"].items():
            o = c["outside_margin"]
            lines.append(
                f"| {_cell(name)} | {_cell(definition)} | {c['forecast']['n']} ({c['wilcoxon']['n']}) | "
                f"{_f(c['forecast']['mean'], 3)} | {_f(c['standard']['mean'], 3)} | "
                f"{_p(c['wilcoxon']['p_value'])} | {o['n']} of {o['n_defined']} | "
                f"{_f(o['forecast']['mean'], 3)} | {_f(o['standard']['mean'], 3)} | "
                f"{_p(o['wilcoxon']['p_value'])} |"
            )
    return lines


def _versus_table(summary: dict) -> list[str]:
    """Every forecaster's metrics against persistence's (paired Wilcoxon, one value per patient); no lines without
    that comparison."""
    versus = summary.get("versus_persistence") or {}
    if not versus:
        return []
    lines = [
        "",
        "Against the last scan (persistence) on the same forecasts, one value per patient (the mean of its "
        "forecasts), paired Wilcoxon; difference = forecaster - persistence:",
        "",
        "| forecaster | metric | forecasts | patients | median difference | p |",
        "|---|---|---|---|---|---|",
    ]
    for name, metrics in versus.items():
        for metric, w in metrics.items():
            lines.append(
                f"| {_cell(name)} | {_cell(metric)} | {w['n_forecasts']} | {w['n']} | "
                f"{_f(w['median_difference'], 3)} | {_p(w['p_value'])} |"
            )
    return lines


def leaderboard_markdown(summary: dict) -> str:
    """Markdown tables of ``summary`` (the dict of an evaluation's summary.json); a string where a number belongs is
    an InputError naming the field (no file: the caller adds it)."""
    check_numbers(summary, ("n_cases", "settings", "forecasters", "versus_persistence"), SUMMARY_NUMBERS)
    bins = [b for b in summary["gap_bins"] if any(f["gap_bins"][b]["n"] for f in summary["forecasters"].values())]
    lines = [
        _run_sentence(summary),
        "",
        *_bin_table(summary, bins),
        *_image_table(summary, bins),
        *_coverage_table(summary),
        *_versus_table(summary),
    ]
    return "\n".join(lines) + "\n"


def _scheduler(run: dict) -> str:
    """`` (N workers of SPEC)`` for a run on a dask.distributed scheduler (``evaluate --scheduler``), else nothing."""
    if not run.get("scheduler"):
        return ""
    return f" ({run.get('workers')} workers of {_cell(str(run['scheduler']))})"


def timing_markdown(timings: dict) -> str:
    """Markdown time table of an evaluation's timings.json (``per_forecaster`` and, when present, ``run``); a string
    where a number belongs is an InputError naming the field."""
    check_numbers(timings, ("per_forecaster", "run"), TIMING_NUMBERS)
    lines = [
        "| forecaster | forecasts | CPU-s per forecast | wall s per patient | CPU-min in all |",
        "|---|---|---|---|---|",
    ]
    for name, t in timings["per_forecaster"].items():
        total = t.get("total_cpu_s")
        lines.append(
            f"| {_cell(name)} | {t['n_forecasts']} | {_f(t.get('mean_cpu_s_per_forecast'), 2)} | "
            f"{_f(t.get('mean_s_per_patient'), 1)} | {_f(None if total is None else total / 60, 1)} |"
        )
    run = timings.get("run")
    if run:
        lines += [
            "",
            f"Whole run: **{run['wall_seconds'] / 60:.1f} min** wall with {run['jobs']} jobs{_scheduler(run)} on "
            f"{run['cpus']} CPUs ({run['cpu_seconds_of_forecasts'] / 60:.1f} CPU-min in the forecasts; "
            f"load average {run['load_average_at_start']:.1f} at the start, "
            f"{run['load_average_at_end']:.1f} at the end).",
        ]
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: str, name: str = "") -> str:
    """``text`` with the lines between ``<!-- leaderboard:start[ name] -->`` and ``<!-- leaderboard:end[ name] -->``
    replaced by ``block``; ValueError when the markers are missing, when ``name`` is not letters, digits, ``.``,
    ``_`` or ``-``, or when ``block`` holds a leaderboard marker (it would break the next update)."""
    if not re.fullmatch(r"[A-Za-z0-9._-]*", name):
        raise ValueError(f"leaderboard name {name!r} must be letters, digits, '.', '_' or '-'")
    if "<!-- leaderboard:" in block:
        raise ValueError("the leaderboard would hold a leaderboard marker; refusing to write it")
    start, end = (m.replace(" -->", f" {name} -->") if name else m for m in (START, END))
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"markers {start} ... {end} not found")
    return text[: i + len(start)] + "\n" + block + text[j:]
