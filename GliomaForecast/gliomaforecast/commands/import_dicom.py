"""Import a patient's DICOM files (MR series, RTSTRUCT GTVs, RTDOSE) into a case folder: case.json with ISO study
dates, NIfTI volumes on the first FLAIR's grid, the GTVs rasterized from their contours, the dose in Gy, and
import.json listing every series and what became of it, with each GTV's volume (mL) beside its contour polygons' and
a warning where they differ by more than 20 %. Sessions in other frames of reference are registered onto the planning
scan (a DICOM Spatial Registration object when one relates them, else estimated); a brain mask and tissue maps are
derived from the planning scan. One patient; nothing is written on error. See docs/dicom.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..io.images import existing_mode
from . import add_overwrite_argument, add_template_argument, output_path

NAME = "import-dicom"
HELP = "make a case folder (case.json) from DICOM MR series, RTSTRUCT GTVs and RTDOSE"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dicom_dir", type=Path, help="folder with the patient's DICOM files (searched recursively)")
    p.add_argument("--out", required=True, type=output_path, help="case folder to write")
    p.add_argument(
        "--mapping",
        type=Path,
        default=None,
        help="JSON object: SeriesInstanceUID or SeriesDescription -> flair|t1ce|t1|t2|adc|ignore, "
        "overriding the series classification",
    )
    p.add_argument(
        "--roi-pattern",
        default="gtv",
        help="regular expression (case-insensitive) for the GTV ROI names of the structure sets "
        "(default 'gtv'); matching ROIs of one structure set are united",
    )
    p.add_argument("--rt-start-date", default=None, help="first radiotherapy fraction, YYYY-MM-DD (rt_start_date)")
    p.add_argument(
        "--register",
        choices=("rigid", "affine"),
        default="rigid",
        help="registration of sessions in another frame of reference than the planning scan's, when no DICOM "
        "Spatial Registration object relates them (default rigid)",
    )
    add_template_argument(p)
    p.add_argument(
        "--no-anatomy",
        action="store_true",
        help="do not derive a brain mask and tissue maps from the planning scan",
    )
    add_overwrite_argument(p)


def run(args: argparse.Namespace) -> int:
    from ..dicom.importer import Preparation, import_dicom

    preparation = Preparation(args.register, args.template, "none" if args.no_anatomy else "try")
    summary = import_dicom(
        args.dicom_dir,
        args.out,
        mapping=args.mapping,
        roi_pattern=args.roi_pattern,
        rt_start_date=args.rt_start_date,
        existing=existing_mode(args.overwrite),
        preparation=preparation,
    )
    used = [s for s in summary["series"] if s.get("used")]
    dates = sorted(s["date"] for s in used if s.get("used_as") == "gtv")
    print(
        f"{summary['patient_id']}: {len(dates)} timepoint(s) with a GTV ({', '.join(dates)}) -> "
        f"{args.out / 'case.json'}"
    )
    for s in used:
        what = s.get("used_as", "")
        extra = " (resampled onto the case grid)" if s.get("resampled") else ""
        if what == "gtv" and s.get("gtv_volume_ml") is not None:
            extra += f": GTV {s['gtv_volume_ml']:.3g} mL (contour polygons {s['contour_volume_ml']:.3g} mL)"
        print(f"  {s.get('date', ''):10} {what:5} {s['modality']:8} {s['series_description'][:40]}{extra}")
    for s in summary["series"]:
        if not s.get("used"):
            print(f"  not used: {s['modality']} '{s['series_description']}' ({s['first_file']}): {s['why']}")
    for entry in summary["not_regular_files"]:
        print(f"  skipped, not a regular file (never opened): {entry['file']} ({entry['kind']})")
    regs = {r["date"]: r for r in summary["preparation"]["registration"]}
    for date, ml in summary["gtv_volumes_ml"].items():
        reg = regs.get(date)
        how = "planning scan" if reg is None else f"{reg['source']} {reg['kind']}, quality {reg['quality']:.2f}"
        print(f"  {date}: GTV {ml:.2f} mL on the case grid; {how}")
    for key, label in (("brain_mask", "brain mask"), ("tissue", "tissue maps")):
        print(f"  {label}: {summary['preparation'][key]['source']}")
    for line in summary.get("warnings", []):
        print(f"  warning: {line}")
    return 0
