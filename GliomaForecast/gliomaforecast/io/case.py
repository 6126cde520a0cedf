"""The patient case manifest (``case.json``, schema ``gliomaforecast.case/1``).

Paths are relative to the manifest. Each timepoint gives ``day`` (days) or an ISO ``date``
(then days count from the earliest date); timepoints must be listed in chronological order with
distinct days. Optional case fields: ``rt_start_day`` (or ``rt_start_date``), ``dose`` (Gy),
``brain_mask``, ``tissue`` (``wm``, ``gm``, ``csf`` probability maps) and ``gtv_labels``.

GTV choice: a timepoint's ``gtv`` mask is used as given. When only ``labels`` (BraTS: 1 necrosis,
2 edema, 3 enhancing, 4 resection cavity) is given, the GTV is the union of ``gtv_labels``, by default
[1, 2, 3]: the whole FLAIR abnormality, as in the multi-task diffusion paper. The cavity (4) is not
tumor and is left out.

Volumes load lazily and are cached; every file is verified whole (gzip CRC and length, the voxel count its
header promises, positive finite spacing) and its grid checked against the first FLAIR (or the first file) when
the case is loaded, so a damaged file or a mismatch is reported before any work is done. Days (and the RT start
day) lie within ``MAX_DAY`` days of 0; a target day lies at most ``MAX_HORIZON_DAYS`` days after the last scan
(and before the first): see :meth:`Case.target_day`. ``labels`` maps hold only the BraTS labels 0-4 and the
``gtv_labels``.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..defaults import check_limit
from ..errors import InputError, parse_json
from ..geometry import Grid, require_same_grid, resample_to
from ..sdf import signed_distance
from .images import as_float32, header_grid, read_image, read_labels, read_mask, suffix_of
from .write_guard import remember_inputs

SCHEMA = "gliomaforecast.case/1"
DEFAULT_GTV_LABELS = (1, 2, 3)
BRATS_LABELS = (0, 1, 2, 3, 4)
MAX_DAY = 73050.0  # days (200 years): the largest |day| of a scan or the RT start on a case's day axis
MAX_HORIZON_DAYS = 3650.0  # days (10 years): the farthest a target day may lie beyond the scans
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
IMAGE_NAMES = ("flair", "t1ce", "t1", "t2", "adc")
TISSUE_NAMES = ("wm", "gm", "csf")
_CASE_KEYS = {
    "schema",
    "patient_id",
    "rt_start_day",
    "rt_start_date",
    "timepoints",
    "dose",
    "brain_mask",
    "tissue",
    "gtv_labels",
    "description",
    "preparation",
}
_TP_KEYS = {"day", "date", "images", "gtv", "labels"}
DERIVED = "derived"  # first element of the cache keys of volumes computed from the scans (Case.derived)


@dataclass(frozen=True)
class Timepoint:
    """One scan: ``day`` (days since the first scan, or as given), image paths by modality, and the GTV
    source (a binary ``gtv`` mask and/or a BraTS ``labels`` map)."""

    day: float
    images: dict[str, Path]
    gtv: Path | None
    labels: Path | None
    index: int


@dataclass
class Case:
    """A loaded, validated case manifest. Volumes are read on first use and cached."""

    path: Path
    patient_id: str
    timepoints: list[Timepoint]
    rt_start_day: float | None
    dose_path: Path | None
    brain_mask_path: Path | None
    tissue_paths: dict[str, Path]
    gtv_labels: tuple[int, ...] = DEFAULT_GTV_LABELS
    resample: bool = False
    _cache: dict[tuple, Any] = field(default_factory=dict, repr=False)
    day0: _dt.date | None = None  # the calendar date of day 0 when the manifest gives dates
    preparation: dict | None = None  # what `gliomaforecast prepare` registered and derived (see provenance())

    def date_of(self, day: float) -> _dt.date | None:
        """The calendar date of ``day`` (days; whole days) when the case gives dates, else None."""
        return None if self.day0 is None else self.day0 + _dt.timedelta(days=int(round(day)))

    def day_of(self, value: str | float, field_name: str = "day") -> float:
        """A day (days) from a number or, when the case gives dates, an ISO date (YYYY-MM-DD); else an InputError
        naming ``field_name``."""
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
        try:
            date = _dt.date.fromisoformat(str(value))
        except ValueError:
            raise InputError(
                None, field_name, f"expected a number of days or an ISO date (YYYY-MM-DD), got {value!r}"
            ) from None
        if self.day0 is None:
            raise InputError(None, field_name, f"{value} is a date but {self.path} gives days, not dates: give a day")
        return float((date - self.day0).days)

    def target_day(self, value: str | float, field_name: str = "day") -> float:
        """A forecast target day (days) from a number or ISO date (see :meth:`day_of`), refused (an InputError
        naming ``field_name``) unless finite and within ``MAX_HORIZON_DAYS`` of the scans: at most that many days
        after the last scan and before the first."""
        day = self.day_of(value, field_name)
        first, last = self.timepoints[0].day, self.timepoints[-1].day
        if not (np.isfinite(day) and first - MAX_HORIZON_DAYS <= day <= last + MAX_HORIZON_DAYS):
            raise InputError(
                None,
                field_name,
                f"day {day:g} is out of range: forecasts reach at most "
                f"{MAX_HORIZON_DAYS:g} days (10 years) beyond the scans, days "
                f"{first - MAX_HORIZON_DAYS:g} to {last + MAX_HORIZON_DAYS:g}",
            )
        return day

    def provenance(self) -> dict:
        """Which of the registration, brain mask and tissue maps came from the user and which were derived from the
        scans (``gliomaforecast prepare``), with each registered session's quality (edge correlation, -1..1)."""
        prep = self.preparation or {}
        given = "user: the case was given on one frame of reference (no registration recorded)"
        return {
            "registration": prep.get("registration", given),
            "brain_mask": prep.get("brain_mask", {"source": "user" if self.brain_mask_path else "none"}),
            "tissue": prep.get("tissue", {"source": "user" if self.tissue_paths else "none"}),
        }

    # --- geometry ------------------------------------------------------------------------------
    def files(self) -> list[tuple[str, Path]]:
        """Every volume of the case as (manifest field, path)."""
        out: list[tuple[str, Path]] = []
        for tp in self.timepoints:
            out += [(f"timepoints[{tp.index}].images.{k}", p) for k, p in tp.images.items()]
            if tp.gtv:
                out.append((f"timepoints[{tp.index}].gtv", tp.gtv))
            if tp.labels:
                out.append((f"timepoints[{tp.index}].labels", tp.labels))
        if self.dose_path:
            out.append(("dose", self.dose_path))
        if self.brain_mask_path:
            out.append(("brain_mask", self.brain_mask_path))
        out += [(f"tissue.{k}", p) for k, p in self.tissue_paths.items()]
        return out

    @cached_property
    def reference(self) -> tuple[str, Path]:
        """The reference volume: the first timepoint's FLAIR, else the first file of the case."""
        first = self.timepoints[0]
        if "flair" in first.images:
            return (f"timepoints[{first.index}].images.flair", first.images["flair"])
        return self.files()[0]

    @cached_property
    def grid(self) -> Grid:
        """The case grid (that of the reference volume)."""
        return _header_grid(self.reference[1], self.reference[0])

    def check_grids(self) -> None:
        """Raise an InputError naming both files when a volume's grid differs from the reference
        (unless the case was loaded with ``resample=True``)."""
        if self.resample:
            return
        ref_field, ref_path = self.reference
        for name, path in self.files():
            require_same_grid(_header_grid(path, name), self.grid, f"{path} ({name})", f"{ref_path} ({ref_field})")

    def _on_grid(self, array: np.ndarray, grid: Grid, path: Path, name: str, label: bool) -> np.ndarray:
        if grid.same_as(self.grid):
            return array
        if not self.resample:
            require_same_grid(grid, self.grid, f"{path} ({name})", f"{self.reference[1]} ({self.reference[0]})")
        return resample_to(array, grid, self.grid, label=label)

    # --- lazy volumes ---------------------------------------------------------------------------
    def _cached(self, key: tuple, load):
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    def image(self, tp: Timepoint, modality: str) -> np.ndarray:
        """The ``modality`` image of ``tp`` as float32 on the case grid."""
        if modality not in tp.images:
            raise InputError(self.path, f"timepoints[{tp.index}].images.{modality}", "not given in the manifest")
        path, name = tp.images[modality], f"timepoints[{tp.index}].images.{modality}"

        def load() -> np.ndarray:
            array, grid = read_image(path, name)
            return self._on_grid(as_float32(array, path, name), grid, path, name, label=False)

        return self._cached(("image", tp.index, modality), load)

    def labels(self, tp: Timepoint) -> np.ndarray | None:
        """The BraTS label map of ``tp`` (int16) on the case grid, or None when not given."""
        if tp.labels is None:
            return None
        name, path = f"timepoints[{tp.index}].labels", tp.labels

        def load() -> np.ndarray:
            array, grid = read_labels(path, name, allowed=BRATS_LABELS + self.gtv_labels)
            return self._on_grid(array, grid, path, name, label=True)

        return self._cached(("labels", tp.index), load)

    def gtv(self, tp: Timepoint) -> np.ndarray:
        """The GTV of ``tp`` as a bool mask on the case grid (see the module docstring for the label
        choice). An empty GTV is an error naming the file."""

        def load() -> np.ndarray:
            path: Path | None
            if tp.gtv is not None:
                name, path = f"timepoints[{tp.index}].gtv", tp.gtv
                array, grid = read_mask(path, name)
                mask = self._on_grid(array, grid, path, name, label=True).astype(bool)
            else:
                name, path = f"timepoints[{tp.index}].labels", tp.labels
                mask = np.isin(cast(np.ndarray, self.labels(tp)), self.gtv_labels)  # a timepoint has gtv or labels
            if not mask.any():
                raise InputError(path, name, "GTV is empty")
            if mask.all():
                raise InputError(path, name, "GTV fills the whole image")
            return mask

        return self._cached(("gtv", tp.index), load)

    def dose(self) -> np.ndarray | None:
        """The RT dose (Gy, float32) on the case grid, or None. Negative dose is an error."""
        if self.dose_path is None:
            return None
        path = self.dose_path

        def load() -> np.ndarray:
            array, grid = read_image(path, "dose")
            if array.size and array.min() < 0:
                raise InputError(path, "dose", f"negative dose ({float(array.min()):.3g} Gy)")
            return self._on_grid(as_float32(array, path, "dose"), grid, path, "dose", label=False)

        return self._cached(("dose",), load)

    def brain_mask(self) -> np.ndarray | None:
        """The brain mask (bool) on the case grid, or None."""
        if self.brain_mask_path is None:
            return None
        path = self.brain_mask_path

        def load() -> np.ndarray:
            array, grid = read_mask(path, "brain_mask")
            return self._on_grid(array, grid, path, "brain_mask", label=True).astype(bool)

        return self._cached(("brain_mask",), load)

    def tissue(self, name: str) -> np.ndarray | None:
        """A tissue probability map (``wm``, ``gm`` or ``csf``; float32 in [0, 1]) or None."""
        if name not in self.tissue_paths:
            return None
        path = self.tissue_paths[name]

        def load() -> np.ndarray:
            array, grid = read_image(path, f"tissue.{name}")
            if array.size and (array.min() < 0 or array.max() > 1):
                raise InputError(path, f"tissue.{name}", "tissue probabilities must lie in [0, 1]")
            return self._on_grid(as_float32(array, path, f"tissue.{name}"), grid, path, f"tissue.{name}", label=False)

        return self._cached(("tissue", name), load)

    def derived(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """A result computed from this case's scans (a signed distance, an evolution field, a calibration...),
        computed once per case object (arrays returned read-only), so the forecasters and targets of one
        evaluation that share an input case share it. ``key`` names what was computed and from which timepoints;
        the result must depend on nothing outside the case and the key (put model identities in the key)."""

        def load() -> Any:
            value = compute()
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
            return value

        return self._cached((DERIVED, *key), load)

    def gtv_distance(self, tp: Timepoint) -> np.ndarray:
        """The signed distance (mm, float32; negative inside) of ``tp``'s GTV on the case grid, cached read-only."""

        def compute() -> np.ndarray:
            try:
                return signed_distance(self.gtv(tp), self.grid.spacing)
            except ValueError as exc:
                raise InputError(self.path, f"timepoints[{tp.index}].gtv", str(exc)) from None

        return self.derived(("gtv_distance", tp.index), compute)

    @property
    def days(self) -> np.ndarray:
        """The scan days (days, float, increasing), one per timepoint."""
        return np.array([tp.day for tp in self.timepoints], dtype=float)

    @classmethod
    def from_arrays(
        cls,
        grid: Grid,
        days: Sequence[float],
        gtvs: Sequence[np.ndarray],
        *,
        images: Sequence[Mapping[str, np.ndarray]] | None = None,
        patient_id: str = "case",
        rt_start_day: float | None = None,
        dose: np.ndarray | None = None,
        brain_mask: np.ndarray | None = None,
        tissue: Mapping[str, np.ndarray] | None = None,
        labels: Sequence[np.ndarray | None] | None = None,
    ) -> Case:
        """A case held in memory (e.g. from MRML nodes): one GTV mask and optional images (by modality) per
        scan day (days, increasing), all (z, y, x) on ``grid``; optional dose (Gy), brain mask, tissue
        maps (0-1) and, per scan, a BraTS label map (``labels``: None for a scan without one; values 0-4). Files are
        named ``<memory>/patient_id/field`` in errors. Nothing is written to disk."""
        base = Path("<memory>") / patient_id
        images = list(images) if images is not None else [{} for _ in gtvs]
        labels = list(labels) if labels is not None else [None for _ in gtvs]
        if len(days) != len(gtvs) or len(images) != len(gtvs) or len(labels) != len(gtvs):
            raise InputError(
                base,
                "timepoints",
                f"{len(days)} days, {len(gtvs)} GTVs, {len(images)} image sets and {len(labels)} label maps",
            )
        files = _MemoryFiles(base, grid)
        timepoints: list[Timepoint] = []
        for i, (day, gtv, imgs, label_map) in enumerate(zip(days, gtvs, images, labels)):
            previous = timepoints[-1] if timepoints else None
            timepoints.append(_memory_timepoint(files, i, day, gtv, imgs, label_map, previous))
        if dose is not None and np.asarray(dose).size and np.min(dose) < 0:
            raise InputError(base / "dose", "dose", f"negative dose ({float(np.min(dose)):.3g} Gy)")
        tissue = dict(tissue or {})
        unknown = sorted(set(tissue) - set(TISSUE_NAMES))
        if unknown:
            raise InputError(base, f"tissue.{unknown[0]}", "unknown tissue")
        case = cls(
            path=base / "case.json",
            patient_id=patient_id,
            timepoints=timepoints,
            rt_start_day=None if rt_start_day is None else _number(rt_start_day, base, "rt_start_day"),
            dose_path=None if dose is None else files.put(("dose",), "dose", dose, np.float32),
            brain_mask_path=None if brain_mask is None else files.put(("brain_mask",), "brain_mask", brain_mask, bool),
            tissue_paths={k: files.put(("tissue", k), f"tissue.{k}", v, np.float32) for k, v in tissue.items()},
        )
        case.__dict__["grid"] = grid  # the cached_property, set: there is no file header to read
        case.__dict__["reference"] = ("grid", base)
        case._cache.update(files.arrays)
        return case


@dataclass
class _MemoryFiles:
    """The arrays of a case held in memory (:meth:`Case.from_arrays`) by cache key, each named by a pseudo path
    ``<memory>/patient_id/field`` (``base / field``) in errors; every array lies on ``grid``."""

    base: Path
    grid: Grid
    arrays: dict[tuple, np.ndarray] = field(default_factory=dict)

    def put(self, key: tuple, name: str, array: np.ndarray, dtype: type) -> Path:
        """Keep a copy of ``array`` as ``dtype`` under ``key``; a shape other than the grid's is an InputError."""
        array = np.asarray(array)
        if array.shape != tuple(self.grid.shape):
            raise InputError(
                self.base / name, name, f"shape {array.shape} differs from the grid {tuple(self.grid.shape)}"
            )
        self.arrays[key] = array.astype(dtype, copy=True)
        return self.base / name


def _memory_labels(files: _MemoryFiles, i: int, label_map: np.ndarray) -> Path:
    """Keep the BraTS label map of timepoint ``i`` (int16); values other than 0-4 are an InputError."""
    where = f"timepoints[{i}]"
    labels_path = files.put(("labels", i), f"{where}.labels", label_map, np.int16)
    values = np.unique(files.arrays[("labels", i)])
    if not np.all(np.isin(values, BRATS_LABELS)):
        raise InputError(
            labels_path,
            f"{where}.labels",
            f"values {', '.join(str(int(v)) for v in values)}: BraTS labels are 0-4",
        )
    return labels_path


def _memory_timepoint(
    files: _MemoryFiles,
    i: int,
    day: float,
    gtv: np.ndarray,
    images: Mapping[str, np.ndarray],
    label_map: np.ndarray | None,
    previous: Timepoint | None,
) -> Timepoint:
    """Timepoint ``i`` of a case held in memory: its day (days, after the ``previous`` one's), images (known
    modalities), GTV (neither empty nor full) and optional BraTS labels, kept in ``files``."""
    where = f"timepoints[{i}]"
    base = files.base
    day = _number(day, base, f"{where}.day")
    if previous is not None and day <= previous.day:
        raise InputError(base, f"{where}.day", f"out of order: day {day:g} is not after day {previous.day:g}")
    unknown = sorted(set(images) - set(IMAGE_NAMES))
    if unknown:
        raise InputError(base, f"{where}.images.{unknown[0]}", "unknown modality")
    paths = {m: files.put(("image", i, m), f"{where}.images.{m}", a, np.float32) for m, a in images.items()}
    gtv_path = files.put(("gtv", i), f"{where}.gtv", gtv, bool)
    mask = files.arrays[("gtv", i)]
    if not mask.any() or mask.all():
        raise InputError(gtv_path, f"{where}.gtv", "GTV is empty" if not mask.any() else "GTV fills the whole image")
    labels_path = None if label_map is None else _memory_labels(files, i, label_map)
    return Timepoint(day, paths, gtv_path, labels_path, i)


def _header_grid(path: Path, name: str) -> Grid:
    """The grid of a file from its header, after the whole file has been verified (no voxel array kept)."""
    if not path.is_file():
        raise InputError(path, name, "file not found")
    return header_grid(path, name)


def _parse_date(value: Any, src: Path, name: str) -> _dt.date:
    """A manifest date: a string of exactly YYYY-MM-DD (no time, no trailing text, not a bare number)."""
    try:
        if not isinstance(value, str) or not _ISO_DATE.match(value):
            raise ValueError
        return _dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(src, name, f"not an ISO date (YYYY-MM-DD): {value!r}") from None


def _date_day(value: Any, src: Path, name: str, day0: _dt.date) -> float:
    """A manifest date as a day (days since ``day0``), within ``MAX_DAY`` of day 0 like a day given as a number."""
    days = (_parse_date(value, src, name) - day0).days
    if abs(days) > MAX_DAY:
        raise InputError(
            src,
            name,
            f"{value} is {days} days from day 0 ({day0.isoformat()}): dates lie within {MAX_DAY:g} days "
            "(200 years) of day 0",
        )
    return float(days)


def _number(value: Any, src: Path, name: str) -> float:
    """A manifest day: a finite number of days within ``MAX_DAY`` of day 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise InputError(src, name, f"must be a number of days, got {value!r}")
    if abs(value) > MAX_DAY:
        raise InputError(src, name, f"day {value:g} is out of range: days lie within {MAX_DAY:g} (200 years) of day 0")
    return float(value)


def _path(base: Path, value: Any, src: Path, name: str) -> Path:
    if not isinstance(value, str) or not value:
        raise InputError(src, name, "must be a file path (string)")
    path = (base / value) if not Path(value).is_absolute() else Path(value)
    if not path.is_file():
        raise InputError(src, name, f"file not found: {path}")
    try:
        suffix_of(path)
    except InputError:
        raise InputError(src, name, f"unsupported file type: {path.name}") from None
    return path


def _unknown(keys: set, allowed: set, src: Path, where: str) -> None:
    extra = sorted(keys - allowed)
    if extra:
        import difflib

        hint = difflib.get_close_matches(extra[0], allowed, n=1)
        hint_s = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise InputError(src, f"{where}{extra[0]}", f"unknown field{hint_s}")


def read_manifest(src: Path) -> dict:
    """The manifest file parsed as a JSON object."""
    if not src.is_file():
        raise InputError(src, None, "case manifest not found")
    try:
        text = src.read_text()
    except OSError as exc:
        raise InputError(src, None, f"cannot read the manifest ({exc.strerror})") from None
    try:
        data = parse_json(text, src)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(src, None, f"not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(src, None, "not a case manifest (JSON nested too deeply)") from None
    if not isinstance(data, dict):
        raise InputError(src, None, "manifest must be a JSON object")
    return data


def _manifest_header(data: dict, src: Path) -> tuple[str, list]:
    """The patient id and the raw timepoint list, after the manifest's fields and schema are checked."""
    _unknown(set(data), _CASE_KEYS, src, "")
    if data.get("schema") != SCHEMA:
        raise InputError(src, "schema", f"must be '{SCHEMA}', got {data.get('schema')!r}")
    pid = data.get("patient_id")
    if not isinstance(pid, str) or not pid:
        raise InputError(src, "patient_id", "missing or not a string")
    tps_raw = data.get("timepoints")
    if not isinstance(tps_raw, list) or not tps_raw:
        raise InputError(src, "timepoints", "missing or empty list")
    check_limit(len(tps_raw), "timepoints", src, "timepoints", "timepoints")
    return pid, tps_raw


def _day0(tps_raw: list, src: Path) -> tuple[_dt.date | None, bool]:
    """The calendar date of day 0 (the earliest timepoint date; None when no timepoint gives a date) and whether every
    timepoint gives a date."""
    uses_date = ["date" in t for t in tps_raw if isinstance(t, dict)]
    if not any(uses_date):
        return None, all(uses_date)
    dates = [
        _parse_date(t["date"], src, f"timepoints[{i}].date")
        for i, t in enumerate(tps_raw)
        if isinstance(t, dict) and "date" in t
    ]
    return min(dates), all(uses_date)


def _timepoint(t: Any, i: int, src: Path, first_date: _dt.date | None, all_dates: bool) -> Timepoint:
    """Timepoint ``i`` of the manifest ``src``: its day (days; from its date when the case gives dates), images by
    modality and GTV source (a ``gtv`` mask and/or a ``labels`` map), paths checked."""
    where, base = f"timepoints[{i}]", src.parent
    if not isinstance(t, dict):
        raise InputError(src, where, "must be an object")
    _unknown(set(t), _TP_KEYS, src, f"{where}.")
    if ("day" in t) == ("date" in t):
        raise InputError(src, where, "give exactly one of 'day' or 'date'")
    if "date" in t and not all_dates:
        raise InputError(src, f"{where}.date", "mixes 'date' and 'day' across timepoints")
    day = (
        _date_day(t["date"], src, f"{where}.date", cast(_dt.date, first_date))  # all_dates: set
        if "date" in t
        else _number(t["day"], src, f"{where}.day")
    )
    images_raw = t.get("images", {})
    if not isinstance(images_raw, dict):
        raise InputError(src, f"{where}.images", "must be an object of modality -> file")
    _unknown(set(images_raw), set(IMAGE_NAMES), src, f"{where}.images.")
    images = {k: _path(base, v, src, f"{where}.images.{k}") for k, v in images_raw.items()}
    gtv = _path(base, t["gtv"], src, f"{where}.gtv") if "gtv" in t else None
    labels = _path(base, t["labels"], src, f"{where}.labels") if "labels" in t else None
    if gtv is None and labels is None:
        raise InputError(src, where, "needs a 'gtv' mask or a 'labels' map")
    return Timepoint(day, images, gtv, labels, i)


def _timepoints(tps_raw: list, src: Path, first_date: _dt.date | None, all_dates: bool) -> list[Timepoint]:
    """Every timepoint of the manifest (:func:`_timepoint`), which must be in chronological order with distinct
    days."""
    timepoints: list[Timepoint] = []
    for i, t in enumerate(tps_raw):
        tp = _timepoint(t, i, src, first_date, all_dates)
        if timepoints and tp.day <= timepoints[-1].day:
            what = "date" if "date" in t else "day"
            raise InputError(
                src,
                f"timepoints[{i}].{what}",
                f"out of order: day {tp.day:g} is not after day {timepoints[-1].day:g} of timepoints[{i - 1}]",
            )
        timepoints.append(tp)
    return timepoints


def _rt_start(data: dict, src: Path, first_date: _dt.date | None) -> float | None:
    """The RT start day (days) from ``rt_start_day`` or ``rt_start_date`` (when the timepoints give dates), or None."""
    if "rt_start_day" in data and "rt_start_date" in data:
        raise InputError(src, "rt_start_day", "give rt_start_day or rt_start_date, not both")
    if data.get("rt_start_day") is not None:
        return _number(data["rt_start_day"], src, "rt_start_day")
    if data.get("rt_start_date") is not None:
        if first_date is None:
            raise InputError(src, "rt_start_date", "needs timepoints given by 'date'")
        return _date_day(data["rt_start_date"], src, "rt_start_date", first_date)
    return None


def _tissue_fields(data: dict, src: Path) -> dict:
    """The raw ``tissue`` object (``wm``, ``gm``, ``csf`` -> file), empty when not given."""
    tissue_raw = data.get("tissue") or {}
    if not isinstance(tissue_raw, dict):
        raise InputError(src, "tissue", "must be an object with wm, gm, csf")
    _unknown(set(tissue_raw), set(TISSUE_NAMES), src, "tissue.")
    return tissue_raw


def _gtv_labels(data: dict, src: Path) -> tuple[int, ...]:
    """The labels whose union is the GTV of a timepoint given by ``labels`` only (default
    :data:`DEFAULT_GTV_LABELS`)."""
    gtv_labels = data.get("gtv_labels", list(DEFAULT_GTV_LABELS))
    if (
        not isinstance(gtv_labels, list)
        or not gtv_labels
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in gtv_labels)
    ):
        raise InputError(src, "gtv_labels", "must be a non-empty list of positive integer labels")
    return tuple(gtv_labels)


PREPARATION_SOURCES = ("user", "derived", "none")
REGISTRATION_SOURCES = ("estimated", "dicom", "given", "none")


def _preparation(data: dict, src: Path, n_timepoints: int) -> dict | None:
    """The ``preparation`` record written by ``gliomaforecast prepare`` (None when absent): ``registration`` (one
    object per registered timepoint: ``timepoint``, ``source``, ``quality`` or null, ...), ``brain_mask`` and
    ``tissue`` (objects with a ``source``), checked field by field."""
    prep = data.get("preparation")
    if prep is None:
        return None
    if not isinstance(prep, dict):
        raise InputError(src, "preparation", "must be an object")
    _unknown(set(prep), {"tool", "reference_timepoint", "registration", "brain_mask", "tissue"}, src, "preparation.")
    regs = prep.get("registration", [])
    if not isinstance(regs, list):
        raise InputError(src, "preparation.registration", "must be a list")
    for i, reg in enumerate(regs):
        where = f"preparation.registration[{i}]"
        if not isinstance(reg, dict):
            raise InputError(src, where, "must be an object")
        tp = reg.get("timepoint")
        if isinstance(tp, bool) or not isinstance(tp, int) or not 0 <= tp < n_timepoints:
            raise InputError(src, f"{where}.timepoint", f"must be a timepoint index 0-{n_timepoints - 1}, got {tp!r}")
        if reg.get("source") not in REGISTRATION_SOURCES:
            raise InputError(src, f"{where}.source", f"must be one of {', '.join(REGISTRATION_SOURCES)}")
        quality = reg.get("quality")
        if quality is not None and (
            isinstance(quality, bool) or not isinstance(quality, (int, float)) or not -1 <= quality <= 1
        ):
            raise InputError(src, f"{where}.quality", f"must be a number in [-1, 1] or null, got {quality!r}")
    for key in ("brain_mask", "tissue"):
        item = prep.get(key, {"source": "none"})
        if not isinstance(item, dict) or item.get("source") not in PREPARATION_SOURCES:
            raise InputError(src, f"preparation.{key}.source", f"must be one of {', '.join(PREPARATION_SOURCES)}")
    return prep


def load_case(path: str | Path, *, resample: bool = False, check_grids: bool = True) -> Case:
    """Parse and validate a case manifest. Errors are InputErrors naming the manifest and the field.

    ``resample=True`` resamples every volume onto the reference grid (the first FLAIR) instead of
    refusing a grid mismatch.
    """
    src = Path(path)
    data = read_manifest(src)
    pid, tps_raw = _manifest_header(data, src)
    base = src.parent
    first_date, all_dates = _day0(tps_raw, src)
    timepoints = _timepoints(tps_raw, src, first_date, all_dates)
    rt = _rt_start(data, src, first_date)
    tissue_raw = _tissue_fields(data, src)
    gtv_labels = _gtv_labels(data, src)
    case = Case(
        path=src,
        patient_id=pid,
        timepoints=timepoints,
        rt_start_day=rt,
        dose_path=_path(base, data["dose"], src, "dose") if data.get("dose") is not None else None,
        brain_mask_path=(
            _path(base, data["brain_mask"], src, "brain_mask") if data.get("brain_mask") is not None else None
        ),
        tissue_paths={k: _path(base, v, src, f"tissue.{k}") for k, v in tissue_raw.items()},
        gtv_labels=gtv_labels,
        resample=resample,
        day0=first_date,
        preparation=_preparation(data, src, len(timepoints)),
    )
    remember_inputs([src, *(path for _, path in case.files())])  # never replaced by an output (--overwrite)
    if check_grids:
        case.check_grids()
    return case
