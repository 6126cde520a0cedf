"""A clinic's case made ready for the models (``gliomaforecast prepare``): every later session registered onto the
planning scan and resampled onto its grid, and a brain mask and tissue maps derived from the scans where the case
has none.

The planning scan is the case's reference: the first timepoint (its FLAIR's grid is the case grid, see
:mod:`gliomaforecast.io.case`). Its other files, the dose, a given brain mask and given tissue maps lie in its frame
of reference and are resampled onto its grid through physical space where their grid differs. Each later session
is registered as a whole (one transform for all its files, :mod:`.sessions`): images are resampled linearly, GTV
masks and label maps by nearest neighbour. A case without a brain mask gets one derived from the planning scan
(:mod:`.anatomy`: a template registered to the scan, its mask and tissue maps propagated, refined by intensity);
tissue maps the case lacks are derived the same way. Nothing else is changed: days, dates, the RT start, the GTV
labels and the patient id are copied.

Units: mm (LPS) for geometry, days, Gy, mL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..errors import InputError
from ..geometry import Grid, resample_to
from ..io.case import BRATS_LABELS, DEFAULT_GTV_LABELS, SCHEMA, TISSUE_NAMES, Case, Timepoint, load_case, read_manifest
from ..io.images import read_image, read_labels, read_mask, suffix_of, write_image, write_text_atomic
from .anatomy import derive_anatomy
from .motion import motion_matrix
from .registration import write_transform
from .sessions import PAIR_ORDER, SessionRegistration, register_session, registration_pair

Progress = Callable[[str], None]
Volumes = dict[str, tuple[np.ndarray, Grid, bool]]  # key (modality, "gtv", "labels") -> (array, its grid, is_label)
TEMPLATE_DEFAULT = "sri24"
ANATOMY_CHOICES = ("derive", "try", "none")


@dataclass
class SessionInput:
    """One timepoint as given: its index, ``day`` (days) and volumes, each on its own grid (:data:`Volumes`)."""

    index: int
    day: float
    volumes: Volumes


@dataclass
class Session:
    """One timepoint on the planning grid: images (float32) by modality, the GTV mask and/or the BraTS label map."""

    index: int
    day: float
    images: dict[str, np.ndarray]
    gtv: np.ndarray | None
    labels: np.ndarray | None

    def gtv_mask(self, gtv_labels: tuple[int, ...]) -> np.ndarray:
        """The GTV (bool): the given mask, else the union of ``gtv_labels`` in the label map."""
        if self.gtv is not None:
            return self.gtv.astype(bool)
        return np.isin(cast(np.ndarray, self.labels), gtv_labels)  # a session has a GTV mask or a label map


@dataclass
class Prepared:
    """A prepared case in memory: the planning ``grid``, the ``sessions`` on it, the registrations of the later
    sessions, the dose (Gy), the brain mask and tissue maps, each with where it came from (``provenance``), and the
    case it came from (``source``; None for volumes given in memory)."""

    grid: Grid
    sessions: list[Session]
    registrations: list[SessionRegistration]
    dose: np.ndarray | None
    brain: np.ndarray | None
    tissue: dict[str, np.ndarray]
    provenance: dict
    gtv_labels: tuple[int, ...] = DEFAULT_GTV_LABELS
    source: Case | None = None

    def gtv_volumes_ml(self) -> list[float]:
        """Each timepoint's GTV volume (mL) on the planning grid."""
        ml = self.grid.voxel_volume_ml
        return [float(s.gtv_mask(self.gtv_labels).sum() * ml) for s in self.sessions]

    def warnings(self) -> list[str]:
        """One line per poor registration (quality below the warning level, stated) and per brain mask or tissue
        maps that could not be derived (the reason stated)."""
        lines = [w for r in self.registrations if (w := r.warning()) is not None]
        for key, label in (("brain_mask", "brain mask"), ("tissue", "tissue maps")):
            if "why" in self.provenance.get(key, {}):
                lines.append(f"{label} {self.provenance[key]['why']}")
        return lines


def _read_session(case: Case, tp: Timepoint) -> SessionInput:
    """Every file of ``tp`` on its own grid."""
    where = f"timepoints[{tp.index}]"
    out: Volumes = {}
    for modality, path in tp.images.items():
        array, grid = read_image(path, f"{where}.images.{modality}")
        out[modality] = (array, grid, False)  # its own type kept where it is not resampled
    if tp.gtv is not None:
        mask, grid = read_mask(tp.gtv, f"{where}.gtv")
        out["gtv"] = (mask.astype(np.uint8), grid, True)
    if tp.labels is not None:
        labels, grid = read_labels(tp.labels, f"{where}.labels", allowed=BRATS_LABELS + case.gtv_labels)
        out["labels"] = (labels, grid, True)
    return SessionInput(tp.index, tp.day, out)


def _is_identity(transform: sitk.Transform) -> bool:
    """Whether the linear ``transform`` maps every point to itself (mm)."""
    shift = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    return bool(np.array_equal(motion_matrix(transform), np.eye(3)) and not shift.any())


def _session(given: SessionInput, grid: Grid, transform: sitk.Transform | None) -> Session:
    """``given`` resampled onto ``grid`` through ``transform`` (None: the identity); volumes already on ``grid`` are
    kept as they are (values and type) when the transform is the identity."""
    out = {}
    for key, (array, own, label) in given.volumes.items():
        if (transform is None or _is_identity(transform)) and own.same_as(grid):
            out[key] = array
        else:
            out[key] = resample_to(array, own, grid, label=label, transform=transform)
    images = {k: v for k, v in out.items() if k not in ("gtv", "labels")}
    gtv = out.get("gtv")
    return Session(given.index, given.day, images, None if gtv is None else gtv.astype(bool), out.get("labels"))


def _on_grid(volume: tuple[np.ndarray, Grid] | None, grid: Grid, label: bool) -> np.ndarray | None:
    """A planning-frame volume (dose, brain mask, tissue map) on ``grid``; None when not given."""
    if volume is None:
        return None
    array, own = volume
    array = np.asarray(array, dtype=bool if label else np.float32)
    return array if own.same_as(grid) else resample_to(array, own, grid, label=label)


def _anatomy(
    planning: Session,
    grid: Grid,
    brain: np.ndarray | None,
    tissue: dict[str, np.ndarray | None],
    gtv_labels: tuple[int, ...],
    template: str,
    anatomy: str,
    progress: Progress,
) -> tuple[np.ndarray | None, dict[str, np.ndarray], dict]:
    """The brain mask and tissue maps on ``grid``: given ones kept, missing ones derived from the planning scan as
    ``anatomy`` asks (:data:`ANATOMY_CHOICES`: ``derive``, a failure is an InputError stating why; ``try``, a failure
    leaves what was given, its reason in the records' ``why``; ``none``, nothing derived), and their provenance
    records."""
    given = {k: v for k, v in tissue.items() if v is not None}
    missing = [k for k in TISSUE_NAMES if k not in given]
    records: dict = {
        "brain_mask": {"source": "user" if brain is not None else "none"},
        "tissue": {"source": "user" if given else "none"},
    }
    if (brain is not None and not missing) or anatomy == "none":
        return brain, given, records
    try:
        modality = next((m for m in PAIR_ORDER if m in planning.images), None)
        if modality is None:
            raise InputError(
                None, "timepoints[0].images", "the planning scan has no MR image to derive a brain mask from"
            )
        progress(f"deriving the {'tissue maps' if brain is not None else 'brain mask and tissue maps'} ({template})")
        derived = derive_anatomy(
            planning.images[modality], grid, modality=modality, template=template, exclude=planning.gtv_mask(gtv_labels)
        )
    except InputError as exc:
        if anatomy == "derive":
            raise
        for record in records.values():
            if record["source"] == "none":
                record["why"] = f"not derived: {exc.message}"
        return brain, given, records
    how = {"template": template, "image": f"timepoint 0 {modality}", "quality": round(derived.quality, 4)}
    if brain is None:
        brain = derived.brain
        records["brain_mask"] = {"source": "derived", **how, "method": derived.method}
    out = {k: np.where(brain, getattr(derived, k), 0.0) if k in missing else given[k] for k in TISSUE_NAMES}
    records["tissue"] = {
        "source": "derived",
        **how,
        "derived": missing,
        "given": [k for k in TISSUE_NAMES if k in given],
    }
    return brain, {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}, records


def prepare_sessions(
    sessions: list[SessionInput],
    grid: Grid,
    *,
    brain: tuple[np.ndarray, Grid] | None = None,
    tissue: dict[str, tuple[np.ndarray, Grid]] | None = None,
    dose: tuple[np.ndarray, Grid] | None = None,
    gtv_labels: tuple[int, ...] = DEFAULT_GTV_LABELS,
    register: str = "rigid",
    template: str = TEMPLATE_DEFAULT,
    given: Mapping[int, tuple[sitk.Transform, str]] | None = None,
    anatomy: str = "derive",
    progress: Progress | None = None,
) -> Prepared:
    """Prepare volumes held in memory (the Slicer panel's "Prepare"; :func:`prepare` for a case on disk):
    ``sessions`` in time order, the first the planning scan, whose frame ``grid`` (the planning grid), ``brain``,
    ``tissue`` (wm, gm, csf probability maps) and ``dose`` (Gy) share. See :func:`prepare` for the rest."""
    say = progress or (lambda _line: None)
    planning = _session(sessions[0], grid, None)
    tissue_on = {k: _on_grid((tissue or {}).get(k), grid, label=False) for k in TISSUE_NAMES}
    if anatomy not in ANATOMY_CHOICES:
        raise ValueError(f"anatomy must be one of {ANATOMY_CHOICES}, got {anatomy!r}")
    brain_on, tissue_maps, records = _anatomy(
        planning, grid, _on_grid(brain, grid, label=True), tissue_on, gtv_labels, template, anatomy, say
    )
    out, registrations = [planning], []
    for given_session in sessions[1:]:
        volumes = given_session.volumes
        f_mod, m_mod = registration_pair(planning.images, [k for k in volumes if k not in ("gtv", "labels")])
        where = f"timepoints[{given_session.index}]"
        say(f"registering {where} (day {given_session.day:g}, {m_mod}) onto the planning {f_mod}")
        reg = register_session(
            given_session.index,
            given_session.day,
            (f_mod, planning.images[f_mod]),
            grid,
            (m_mod, volumes[m_mod][0], volumes[m_mod][1]),
            register,
            brain_on,
            None if given is None else given.get(given_session.index),
            moving_name=f"{where}.images.{m_mod}",
        )
        registrations.append(reg)
        out.append(_session(given_session, grid, reg.transform))
    dose_on = _on_grid(dose, grid, label=False)
    return Prepared(grid, out, registrations, dose_on, brain_on, tissue_maps, records, tuple(gtv_labels))


def _case_volume(path: Path | None, name: str, label: bool) -> tuple[np.ndarray, Grid] | None:
    if path is None:
        return None
    return read_mask(path, name) if label else read_image(path, name)


def prepare(
    case_path: str | Path,
    *,
    register: str = "rigid",
    template: str = TEMPLATE_DEFAULT,
    given: Mapping[int, tuple[sitk.Transform, str]] | None = None,
    anatomy: str = "derive",
    progress: Progress | None = None,
) -> Prepared:
    """Prepare the case ``case_path`` (see the module docstring). ``register``: rigid, affine or none (the sessions
    already share the planning scan's frame); ``template``: the template of the derived brain mask and tissue maps
    (sri24 or mni152); ``given``: (transform, source) by timepoint index (ITK convention; source ``dicom`` for a
    DICOM Spatial Registration object, ``none`` for a session in the planning scan's frame) used instead of
    estimating; ``anatomy``: derive a missing brain mask or tissue maps (``derive``, the default), try to (``try``:
    a failed derivation leaves them missing, with its reason) or not (``none``); ``progress``: called with a line per
    step. InputError for a
    session that will not register (its measured quality stated), an unknown ``register`` or template, a template
    that is not installed (the package named) and every bad file of the case."""
    case = load_case(case_path, check_grids=False)
    tissue = {k: v for k in TISSUE_NAMES if (v := _case_volume(case.tissue_paths.get(k), f"tissue.{k}", False))}
    prepared = prepare_sessions(
        [_read_session(case, tp) for tp in case.timepoints],
        case.grid,
        brain=_case_volume(case.brain_mask_path, "brain_mask", True),
        tissue=tissue,
        dose=_case_volume(case.dose_path, "dose", False),
        gtv_labels=case.gtv_labels,
        register=register,
        template=template,
        given=given,
        anatomy=anatomy,
        progress=progress,
    )
    prepared.source = case
    return prepared


RESERVED = {"case.json", "prepare.png", "dose.nii.gz", "brain_mask.nii.gz", *(f"{k}.nii.gz" for k in TISSUE_NAMES)}


def _source_name(path: Path) -> str:
    """A source file's name with the suffix of the written file (.nii.gz)."""
    return path.name[: -len(suffix_of(path))] + ".nii.gz"


def _file_names(prepared: Prepared) -> dict[tuple, str]:
    """The output file of every volume and transform, by key: the source files' names (as .nii.gz) when the case
    came from files whose names are distinct, else ``tNN_<modality|gtv|labels>.nii.gz``."""
    names: dict[tuple, str] = {}
    for s in prepared.sessions:
        keys = [*s.images, *(k for k in ("gtv", "labels") if getattr(s, k) is not None)]
        names.update({(s.index, k): f"t{s.index:02d}_{k}.nii.gz" for k in keys})
    if prepared.source is not None:
        tps = prepared.source.timepoints
        own = {
            (i, k): _source_name(path)
            for (i, k) in names
            if (path := tps[i].images.get(k) or {"gtv": tps[i].gtv, "labels": tps[i].labels}.get(k)) is not None
        }
        if len(own) == len(names) and len(set(own.values())) == len(own) and not RESERVED & set(own.values()):
            names = own
    for r in prepared.registrations:
        names[(r.timepoint, "transform")] = f"t{r.timepoint:02d}_to_t00.tfm"
    return names


def manifest(prepared: Prepared, names: Mapping[tuple, str]) -> dict:
    """The prepared case's case.json: the source manifest's patient, days or dates, RT start, GTV labels and
    description, the new files, and ``preparation`` (what was registered and derived, with qualities)."""
    if prepared.source is None:
        raise ValueError("a case.json is written for a case read from a manifest (prepare), not from memory")
    raw = read_manifest(prepared.source.path)
    out: dict = {"schema": SCHEMA, "patient_id": raw["patient_id"]}
    for key in ("description", "rt_start_day", "rt_start_date", "gtv_labels"):
        if key in raw:
            out[key] = raw[key]
    timepoints = []
    for s, tp_raw in zip(prepared.sessions, raw["timepoints"]):
        i = s.index
        entry = {k: tp_raw[k] for k in ("day", "date") if k in tp_raw}
        entry["images"] = {m: names[(i, m)] for m in s.images}
        entry.update({k: names[(i, k)] for k in ("gtv", "labels") if (i, k) in names})
        timepoints.append(entry)
    out["timepoints"] = timepoints
    if prepared.dose is not None:
        out["dose"] = "dose.nii.gz"
    if prepared.brain is not None:
        out["brain_mask"] = "brain_mask.nii.gz"
    if prepared.tissue:
        out["tissue"] = {k: f"{k}.nii.gz" for k in prepared.tissue}
    out["preparation"] = {
        "tool": f"gliomaforecast {__version__} prepare",
        "reference_timepoint": 0,
        "registration": [r.record(names[(r.timepoint, "transform")]) for r in prepared.registrations],
        **prepared.provenance,
    }
    return out


def write_prepared(prepared: Prepared, folder: str | Path) -> list[Path]:
    """Write the prepared case into the existing ``folder`` (the caller's atomic output folder): the volumes on the
    planning grid (exact geometry), the transforms (.tfm) and case.json. Returns the files written."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "output", "folder does not exist")
    names = _file_names(prepared)
    grid, written = prepared.grid, []
    for s in prepared.sessions:
        i = s.index
        volumes = {**s.images, "gtv": s.gtv, "labels": s.labels}
        for key, array in volumes.items():
            if array is not None:
                written.append(write_image(folder / names[(i, key)], array, grid))
    for r in prepared.registrations:
        written.append(write_transform(r.transform, folder / names[(r.timepoint, "transform")]))
    if prepared.dose is not None:
        written.append(write_image(folder / "dose.nii.gz", prepared.dose, grid))
    if prepared.brain is not None:
        written.append(write_image(folder / "brain_mask.nii.gz", prepared.brain, grid))
    for k, v in prepared.tissue.items():
        written.append(write_image(folder / f"{k}.nii.gz", v, grid))
    text = json.dumps(manifest(prepared, names), indent=1) + "\n"
    written.append(write_text_atomic(folder / "case.json", text))
    return written
