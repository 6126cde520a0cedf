"""Import a patient's DICOM files (MR series, RTSTRUCT GTVs, RTDOSE) into a case folder: case.json with ISO study
dates, NIfTI volumes on the first FLAIR's grid, the GTVs rasterized from their contours, the dose in Gy, and
import.json listing every series and what became of it. One patient and one frame of reference; nothing is written
on error. See docs/dicom.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..io.images import existing_mode
from . import add_overwrite_argument, output_path

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
    add_overwrite_argument(p)


def run(args: argparse.Namespace) -> int:
    from ..dicom.importer import import_dicom

    summary = import_dicom(
        args.dicom_dir,
        args.out,
        mapping=args.mapping,
        roi_pattern=args.roi_pattern,
        rt_start_date=args.rt_start_date,
        existing=existing_mode(args.overwrite),
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
        print(f"  {s.get('date', ''):10} {what:5} {s['modality']:8} {s['series_description'][:40]}{extra}")
    for s in summary["series"]:
        if not s.get("used"):
            print(f"  not used: {s['modality']} '{s['series_description']}' ({s['first_file']}): {s['why']}")
    for entry in summary["not_regular_files"]:
        print(f"  skipped, not a regular file (never opened): {entry['file']} ({entry['kind']})")
    return 0
