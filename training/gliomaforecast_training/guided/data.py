"""Training slices for the guided DDIM: 64 x 64 FLAIR crops at 2 mm of every scan of a virtual cohort.

Each scan i >= 1 of a patient gives crops centred (y, x) on the centre of mass of the union of GTV i - 1 and GTV i
(the forecaster centres on its last two scans the same way, :mod:`gliomaforecast.forecasters.guided.inputs`),
of the axial slices within 20 mm of either GTV, at most ``max_slices`` of them drawn with the seed.

Arrays (``SliceData``):
* ``image`` (N, 64, 64) float16: the DDPM's units ``2 FLAIR / scale - 1`` (scale = 99th percentile in the brain);
* ``burden`` (N,) float32: GTV area / brain area inside the crop (dimensionless, the regressor's target);
* ``patient`` (N,) str and ``day`` (N,) float32 days.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from gliomaforecast.io.case import load_case
from gliomaforecast.forecasters.guided import inputs as gi


@dataclass
class SliceData:
    """Stacked crops (see the module docstring)."""

    image: np.ndarray
    burden: np.ndarray
    patient: np.ndarray
    day: np.ndarray

    def __len__(self) -> int:
        return int(self.burden.shape[0])

    def save(self, path: str | Path) -> None:
        """Write the arrays to one ``.npz`` file."""
        np.savez(path, image=self.image, burden=self.burden, patient=self.patient, day=self.day)

    @classmethod
    def load(cls, path: str | Path) -> "SliceData":
        """Read a file written by :meth:`save`."""
        z = np.load(path)
        return cls(z["image"], z["burden"], z["patient"], z["day"])


def cohort_slices(case_paths: Sequence[str | Path], max_slices: int = 12, seed: int = 0,
                  crop: int = gi.CROP, log=None) -> SliceData:
    """Crops of every scan after the first of the given cases (case.json files or their folders), seeded."""
    rng = np.random.default_rng(seed)
    images, burdens, patients, days = [], [], [], []
    for path in case_paths:
        case = load_case(Path(path) / "case.json" if Path(path).is_dir() else path)
        for k in range(1, len(case.timepoints)):
            try:
                crops = gi.scan_crops(case, k - 1, k, crop)
            except ValueError:  # no tumour in either scan: nothing to centre on
                continue
            z = np.arange(len(crops.z))
            if z.size > max_slices:
                z = np.sort(rng.choice(z, max_slices, replace=False))
            images.append(crops.image[z].astype(np.float16))
            burdens.append(crops.burden[z].astype(np.float32))
            patients += [case.patient_id] * len(z)
            days.append(np.full(len(z), case.timepoints[k].day, np.float32))
        if log:
            log(f"{case.patient_id}: {sum(len(b) for b in burdens)} slices so far")
    return SliceData(np.concatenate(images), np.concatenate(burdens), np.array(patients), np.concatenate(days))
