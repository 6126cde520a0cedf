"""Compare two forecast output folders voxel for voxel (a refactoring's check: `make demo` before and after).

    python benchmarks/compare_outputs.py REF_DIR OUT_DIR

Every volume of REF (NIfTI, NRRD, .seg.nrrd) must exist in OUT with the same grid (shape, spacing, origin,
direction) and identical voxels; forecast.json must be equal except its ``timings``. Prints one line per file and
exits 1 when anything differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from gliomaforecast.io.images import read_image, read_segmentation, read_vector_image

VOLUMES = ("*.nii.gz", "*.nii", "*.nrrd")


def same_volume(ref: Path, out: Path) -> str | None:
    """None when ``out`` holds the same grid and voxels as ``ref``, else why not (one line)."""
    read = (
        read_segmentation if ref.name.endswith(".seg.nrrd")
        else read_vector_image if ref.name.startswith("displacement") else read_image
    )
    a, grid_a = read(ref, ref.name)
    b, grid_b = read(out, out.name)
    if grid_a != grid_b:
        return f"grid {grid_a} != {grid_b}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"segments {list(a)} != {list(b)}"
        differing = [name for name in a if not np.array_equal(a[name], b[name])]
        return f"segments differ: {differing}" if differing else None
    return None if np.array_equal(a, b, equal_nan=True) else f"{int(np.count_nonzero(a != b))} voxels differ"


def same_record(ref: Path, out: Path) -> str | None:
    """None when both forecast.json files agree except their timings."""
    a, b = (json.loads(p.read_text()) for p in (ref, out))
    a.pop("timings", None)
    b.pop("timings", None)
    return None if a == b else "differs (besides timings)"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ref_dir, out_dir = Path(args[0]), Path(args[1])
    failures = 0
    files = sorted({p for pattern in VOLUMES for p in ref_dir.glob(pattern)}) + [ref_dir / "forecast.json"]
    for ref in files:
        out = out_dir / ref.name
        if not out.exists():
            why = "missing"
        elif ref.name == "forecast.json":
            why = same_record(ref, out)
        else:
            why = same_volume(ref, out)
        failures += why is not None
        print(f"{ref.name}: {'identical' if why is None else why}")
    print(f"{len(files) - failures} of {len(files)} files identical")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
