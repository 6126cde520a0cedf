"""Write a :class:`~gliomaforecast.forecast.Forecast` as the output folder of docs/architecture.md, atomically: the
volumes, targets.seg.nrrd, growth.json, the report (:mod:`.report`) and forecast.json (:mod:`.record`)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..deformation import write_displacement
from ..forecast import Forecast
from ..growth.record import growth_record
from ..io.images import atomic_output_dir, write_image, write_segmentation
from ..io.shown_paths import shown_path
from ..plausibility import forecast_warnings
from .record import SEGMENT_COLORS, SEGMENT_TERMS, day_tag, flair_file_name, forecast_record
from .report import write_report


def _write_volumes(fc: Forecast, tmp: Path) -> None:
    """The forecast's volumes, targets.seg.nrrd and growth.json into the temporary folder ``tmp``."""
    grid = fc.case.grid
    tag = day_tag(fc.target_day)
    out = fc.output
    write_image(tmp / f"probability_{tag}.nii.gz", out.probability.astype(np.float32), grid)
    write_image(tmp / f"uncertainty_{tag}.nii.gz", out.uncertainty.astype(np.float32), grid)
    if out.image is not None:
        write_image(tmp / flair_file_name(fc), out.image.astype(np.float32), grid)
    for modality, image in out.extra_images.items():
        write_image(tmp / f"{modality}_{tag}.nii.gz", image.astype(np.float32), grid)
    for name, scenario in out.scenarios.items():
        write_image(tmp / f"probability_{name}_{tag}.nii.gz", scenario.probability.astype(np.float32), grid)
        if scenario.image is not None:
            write_image(tmp / f"flair_{name}_{tag}.nii.gz", scenario.image.astype(np.float32), grid)
    if out.displacement is not None:
        write_displacement(tmp / "displacement.nii.gz", out.displacement, grid)
    write_image(tmp / "ctv_standard.nii.gz", fc.ctv_standard.astype(np.uint8), grid)
    write_image(tmp / "ctv_forecast.nii.gz", fc.ctv_forecast.astype(np.uint8), grid)
    segments = {"GTV": fc.gtv, "CTV standard": fc.ctv_standard, "CTV forecast": fc.ctv_forecast}
    write_segmentation(tmp / "targets.seg.nrrd", segments, grid, colors=SEGMENT_COLORS, terminology=SEGMENT_TERMS)
    growth = {
        "patient_id": fc.case.patient_id,
        "case": shown_path(fc.case.path),
        **growth_record(fc.growth, np.array([fc.target_day])),
    }
    (tmp / "growth.json").write_text(json.dumps(growth, indent=2) + "\n")


def write_forecast(
    fc: Forecast, out_dir: str | Path, existing: str = "merge", warnings: list[str] | None = None
) -> list[Path]:
    """Write every output of ``fc`` into ``out_dir`` atomically; returns the written file paths. ``warnings``: the
    forecast's plausibility warnings when computed already (None: computed here, once for the report and
    forecast.json)."""

    warnings = forecast_warnings(fc) if warnings is None else warnings
    inputs = [p for _, p in fc.case.files()] + [fc.case.path]
    with atomic_output_dir(out_dir, inputs=inputs, existing=existing) as tmp, ThreadPoolExecutor(1) as pool:
        volumes = pool.submit(_write_volumes, fc, tmp)  # ITK and zlib release the GIL: written while the report draws
        write_report(fc, tmp, warnings)
        volumes.result()  # a failed volume write raises here, inside the temporary folder: nothing is published
        (tmp / "forecast.json").write_text(json.dumps(forecast_record(fc, warnings), indent=2) + "\n")
        names = sorted(p.name for p in tmp.iterdir())
    return [Path(out_dir) / n for n in names]
