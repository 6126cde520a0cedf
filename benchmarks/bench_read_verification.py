"""The cost of verifying every image file before it is read (gzip CRC and length, voxel count, spacing): loading the
sample case and reading all of its volumes through gliomaforecast (verified) against, in the same run, SimpleITK
reading the same files directly (the unverified read, the reference). Each timed pass clears the verification
cache, so every file is verified as in a fresh process.

Run: .venv/bin/python benchmarks/bench_read_verification.py  -> prints the ratio, writes
benchmarks/results/read_verification.json
"""

from __future__ import annotations

import SimpleITK as sitk

from _measure import measure, write_result
from gliomaforecast.io import integrity as file_integrity
from gliomaforecast.io.case import load_case
from gliomaforecast.resources import resources_dir

CASE = resources_dir() / "SampleData" / "sample_patient" / "case.json"


def verified() -> int:
    """Load the case (every file verified and its grid compared) and read every volume; returns the file count."""
    file_integrity._VERIFIED.clear()
    case = load_case(CASE)
    for tp in case.timepoints:
        case.gtv(tp)
        case.labels(tp)
        for modality in tp.images:
            case.image(tp, modality)
    case.dose()
    case.brain_mask()
    for name in case.tissue_paths:
        case.tissue(name)
    return len(case.files())


def unverified() -> int:
    """SimpleITK reads of the same files, nothing checked (the reference)."""
    files = [path for _, path in load_case(CASE, check_grids=False).files()]  # the manifest only
    for path in files:
        sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    return len(files)


def main() -> None:
    seconds_verified, peak_verified, n = measure(verified)
    seconds_plain, peak_plain, _ = measure(unverified)
    payload = {"files": n, "seconds_verified": seconds_verified, "seconds_sitk_reference": seconds_plain,
               "ratio_verified_vs_sitk": seconds_verified / seconds_plain,
               "peak_mib_verified": peak_verified, "peak_mib_sitk_reference": peak_plain}
    print(f"{n} files: verified read {seconds_verified:.2f} s, SimpleITK read {seconds_plain:.2f} s, "
          f"ratio {payload['ratio_verified_vs_sitk']:.2f}")
    print(write_result("read_verification", payload))


if __name__ == "__main__":
    main()
