"""MR series: which sequence each is (FLAIR, T1CE, T1, T2, ADC) and its volume (SimpleITK's ImageSeriesReader).

Classification, first rule that applies:

1. the mapping file: a series' SeriesInstanceUID or exact SeriesDescription mapped to a modality or ``ignore``;
2. localizers, scouts and diffusion-weighted series are not used;
3. words of SeriesDescription, ProtocolName and SequenceName: ``flair``/``tirm``/``dark fluid`` -> flair;
   ``adc``/``apparent diffusion`` -> adc; ``t2`` -> t2; ``t1``/``mprage``/``spgr``/``bravo`` -> t1, or t1ce when the
   words say contrast (``ce``, ``gd``, ``gad``, ``post``, ``contrast``, ``+c``) or ContrastBolusAgent is given;
4. sequence attributes: an inversion time of 1500 ms or more with a repetition time of 5000 ms or more -> flair;
   repetition time under 1000 ms with echo time under 30 ms -> t1 (t1ce with ContrastBolusAgent); repetition time
   of 2000 ms or more with echo time of 80 ms or more -> t2;
5. otherwise the series is unclassified and not used (the import report lists it; map it in the mapping file).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..geometry import Grid
from ..io.case import IMAGE_NAMES
from .files import Series
from .geometry import slice_order

IGNORE = "ignore"
_SKIP_WORDS = ("localizer", "localiser", "scout", "survey", "dwi", "trace", "diffusion weighted")
_CONTRAST_WORDS = {"ce", "gd", "gad", "gado", "post", "contrast", "postcontrast", "km"}  # km: Kontrastmittel


def read_mapping(path: str | Path | None) -> dict[str, str]:
    """The mapping file (JSON object: SeriesInstanceUID or SeriesDescription -> modality or ``ignore``); {} for
    None."""
    if path is None:
        return {}
    path = Path(path)
    if path.exists() and not path.is_file():  # a FIFO or a device would block the read; a folder is no file
        raise InputError(path, "mapping", "is not a regular file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "mapping", "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, "mapping", f"not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(path, "mapping", "must be a JSON object: series UID or description -> modality")
    allowed = (*IMAGE_NAMES, IGNORE)
    for key, value in data.items():
        if value not in allowed:
            raise InputError(path, key, f"maps to {value!r}; expected one of {', '.join(allowed)}")
    return dict(data)


def _words(series: Series) -> str:
    parts = (series.text(k) for k in ("SeriesDescription", "ProtocolName", "SequenceName"))
    return " ".join(parts).lower()


def _number(series: Series, keyword: str) -> float | None:
    try:
        return float(getattr(series.first, keyword))
    except (AttributeError, TypeError, ValueError):
        return None


def _has_contrast(series: Series, tokens: set[str]) -> bool:
    return bool(series.text("ContrastBolusAgent").strip()) or bool(tokens & _CONTRAST_WORDS) or "+c" in _words(series)


def classify(series: Series, mapping: Mapping[str, str] | None = None) -> str | None:
    """The modality name of an MR series (one of ``case.IMAGE_NAMES``), ``ignore``, or None when unclassified."""
    mapping = mapping or {}
    for key in (series.uid, series.text("SeriesDescription")):
        if key and key in mapping:
            return mapping[key]
    text = _words(series)
    image_type = " ".join(str(v) for v in getattr(series.first, "ImageType", [])).lower()
    if any(w in text for w in _SKIP_WORDS) or "localizer" in image_type:
        return IGNORE
    tokens = set(re.split(r"[^a-z0-9+]+", text)) - {""}
    if "flair" in text or "tirm" in text or "dark fluid" in text or "darkfluid" in text:
        return "flair"
    if "adc" in tokens or "apparent diffusion" in text:
        return "adc"
    if any(t.startswith("t2") for t in tokens):
        return "t2"
    if any(t.startswith("t1") for t in tokens) or tokens & {"mprage", "spgr", "bravo", "tfl", "vibe"}:
        return "t1ce" if _has_contrast(series, tokens) else "t1"
    tr, te, ti = (_number(series, k) for k in ("RepetitionTime", "EchoTime", "InversionTime"))
    if ti is not None and tr is not None and ti >= 1500 and tr >= 5000:
        return "flair"
    if tr is not None and te is not None:
        if tr < 1000 and te < 30:
            return "t1ce" if _has_contrast(series, tokens) else "t1"
        if tr >= 2000 and te >= 80:
            return "t2"
    return None


def series_grid(series: Series) -> tuple[list[Path], Grid]:
    """The file paths of a single-frame image series in slice order and its grid (see :mod:`dicom_geometry`)."""
    order, grid = slice_order(series.headers, series.paths)
    return [series.paths[i] for i in order], grid


def read_volume(series: Series) -> tuple[np.ndarray, Grid]:
    """The voxels of an image series (z, y, x; rescale slope/intercept applied by SimpleITK, stored dtype kept when
    there is none) and its grid from the headers."""
    paths, grid = series_grid(series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in paths])
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        line = next((ln for ln in str(exc).splitlines() if ln.strip()), "unreadable")
        raise InputError(
            paths[0].parent, "PixelData", f"series {series.uid}: SimpleITK cannot read it ({line.strip()[:160]})"
        ) from None
    array = sitk.GetArrayFromImage(image)
    if array.shape != grid.shape:
        raise InputError(
            paths[0].parent,
            "PixelData",
            f"series {series.uid}: {array.shape} voxels read, the headers describe {grid.shape}",
        )
    return array, grid
