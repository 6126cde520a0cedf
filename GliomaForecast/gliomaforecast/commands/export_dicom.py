"""Export the target volumes of a forecast (or ctv) output folder for a planning system: an RTSTRUCT (GTV, CTV
standard, CTV forecast as closed planar contours in patient mm on every slice of the planning series, ROI types GTV /
CTV, the segmentation's colours) and a DICOM SEG of the same segments with their terminology codes. Both reference
the planning series, get new UIDs and say "research use only". Nothing is written on error. See docs/dicom.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..io.images import existing_mode
from . import add_overwrite_argument, output_path

NAME = "export-dicom"
HELP = "write the targets as DICOM RTSTRUCT and SEG on a planning series"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("forecast_dir", type=Path, help="forecast (or ctv) output folder with targets.seg.nrrd")
    p.add_argument(
        "--reference",
        required=True,
        type=Path,
        help="folder with the DICOM planning series (one image series) the targets are drawn on",
    )
    p.add_argument(
        "--out", required=True, type=output_path, help="output folder for targets_rtstruct.dcm and targets_seg.dcm"
    )
    add_overwrite_argument(p)


def describe(summary: dict, out: Path) -> str:
    """A few lines for the terminal: the files, the segments with their types and volumes (mL)."""
    lines = [f"{summary['patient_id']}: RTSTRUCT and SEG on series {summary['reference_series']} -> {out}"]
    if summary["resampled"]:
        lines.append("  note: the targets' grid differs from the reference series; masks moved onto it (nearest)")
    lines += [
        f"  {name:14} {seg['interpreted_type']:4} {seg['volume_ml']:9.2f} mL"
        for name, seg in summary["segments"].items()
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..dicom.export import export_dicom

    summary = export_dicom(args.forecast_dir, args.reference, args.out, existing=existing_mode(args.overwrite))
    print(describe(summary, args.out))
    return 0
