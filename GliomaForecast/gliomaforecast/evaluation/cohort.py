"""Cohort evaluation: forecast scans of every patient from earlier ones and score them.

Which scans are forecast from which is the protocol's (:mod:`.protocols`): ``last-scan`` (the last
scan from all earlier ones), ``horizon`` (every input prefix and every later scan whose gap lies in a range) or
``recurrence`` (the first post-RT progression from the scans up to the RT planning scan).
For each patient folder of a cohort (``COHORT_DIR/*/case.json``), each forecaster and each of its tasks:

1. the case cut to its input scans (a new case without the later scans) is forecast at the target scan's day
   with :func:`forecast.run_forecast` (same seed for every patient);
2. the forecast probability map is scored against the truth's probability map (the logistic map of
   the last GTV's signed distance, beta 0.1 /mm, mu 15 mm) inside the brain mask (the whole grid when
   the case has none): RMSE, BCE (nats), KL (nats), ECE (10 bins), Pearson r on P > 0.2; Dice, HD95 (mm) and
   volume (mL) of the forecast tumor (its region phi <= 0, ``sdf.tumor_region``) against the target GTV;
3. both target volumes (the standard margin CTV on the last prior GTV and the iso-volumetric forecast
   CTV) are scored by their coverage of the future tumor: enhancing (label 3) and enhancing + necrosis
   (labels 1, 3) of the last timepoint's BraTS labels (its GTV when it has no labels), and the whole
   future GTV (``gtv``: defined for every patient, also when no enhancing tumor recurs);
4. the forecaster's FLAIR (synthesized, or the last FLAIR warped; NaN when it gives none) and, as the baseline, the
   last input FLAIR are compared with the target's FLAIR (in the scans' own units) on the axial slices holding the
   last input or the target GTV, inside the brain's bounding box: PSNR (dB) and mean 2D SSIM
   (:func:`metrics_images.slice_similarity`).

Calibration is also pooled over patients: the voxels of every scored patient in one reliability
diagram per forecaster (10 equal-width bins), with its ECE.

Across patients: the paired Wilcoxon signed-rank test of forecast vs standard coverage
(:func:`evaluation.compare_plans`), forecaster vs forecaster on the forecast plan's coverage (pairs scored by
both), every forecaster's HD95, RMSE and Dice against persistence's (the last scan; ``versus_persistence``, pairs
scored by both), summary statistics per metric and per time-gap bin (gap from the last input scan to the target, days).
A patient with several scored forecasts (``horizon``) enters the Wilcoxon tests once, with the mean of its
forecasts, so the tested pairs stay independent; the per-bin tables count forecasts and hold only the forecasts
that every forecaster with results scored (the same pairs for all: a one-scan forecaster gets more prefixes).
Patients (or patient/forecaster pairs) that cannot be scored are skipped with the reason recorded.
Results do not depend on the number of parallel jobs, nor on a dask.distributed scheduler running the patients as
tasks (``scheduler``, :mod:`..scheduling`): rows are sorted by patient id and forecaster.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import defaults, evaluation, models, scheduling, sdf
from ..errors import InputError
from ..forecast import fit_case_growth, run_forecast
from ..forecasters import entry
from ..growth.fit import GrowthFit
from ..io.case import Case, Timepoint, load_case
from ..targets.standard_plan import AUTO, plan_record
from . import images as metrics_images
from .cohort_folder import check_distinct_patients, scan_cohort, shown_reason
from .protocols import GAP_BINS, Protocol, Task, gap_bin, plan_tasks, prefix_case, scan_volumes

SCHEMA = "gliomaforecast.evaluation/1"
DEFINITIONS = {"enhancing": "enhancing", "enhancing+necrosis": "enhancing_necrosis", "gtv": "gtv"}  # -> column
PLANS = ("forecast", "standard")
N_BINS = 10  # calibration bins
BASELINE_METRICS = ("hd95_mm", "rmse", "dice_tumor")  # tested against persistence (the last scan), per patient
MAP_METRICS = ("rmse", "bce", "kl", "ece", "dice_tumor", "pearson_0.2", "hd95_mm", "volume_error_ml")
# the forecaster's FLAIR (synthesized or warped) and the last input FLAIR (the baseline) against the target's FLAIR
IMAGE_METRICS = ("flair_psnr_db", "flair_ssim", "last_flair_psnr_db", "last_flair_ssim")
COVERAGE_COLUMNS = tuple(f"coverage_{plan}_{suffix}" for suffix in DEFINITIONS.values() for plan in PLANS)
COLUMNS = (
    "patient_id",
    "forecaster",
    "pair_id",
    "target_index",
    "n_priors",
    "last_prior_day",
    "target_day",
    "gap_days",
    "gap_bin",
    "recurrence_source",
    *MAP_METRICS,
    "volume_forecast_ml",
    "volume_truth_ml",
    "plan",
    "ctv_volume_ml",
    *COVERAGE_COLUMNS,
    *IMAGE_METRICS,
)
_SCORING_ERRORS = (ValueError, RuntimeError)  # InputError is a ValueError; onnxruntime/SimpleITK raise RuntimeError
UNITS = {
    "rmse": "probability",
    "bce": "nats",
    "kl": "nats",
    "ece": "probability",
    "dice_tumor": "1",
    "pearson_0.2": "1",
    "hd95_mm": "mm",
    "volume_error_ml": "mL",
    "flair_psnr_db": "dB",
    "flair_ssim": "1",
    "last_flair_psnr_db": "dB",
    "last_flair_ssim": "1",
    "coverage": "fraction of the recurrence volume (definitions: enhancing = label 3, enhancing+necrosis = labels 1 "
    "and 3, gtv = the whole future GTV)",
    "gap_days": "days",
}
"""The units of the summary's metrics."""


@dataclass(frozen=True)
class EvaluationSettings:
    """How every patient is forecast: forecaster names, seed, growth-model samples, bootstrap refits,
    standard CTV margin (mm), device (auto, cpu, cuda), the protocol and, for ``horizon``, the gap range
    (days, inclusive), the pair rule and the standard plan's convention (``standard_plan.CHOICES``; ``auto``: per
    patient, estro-eano where the planning scan has BraTS labels)."""

    forecasters: tuple[str, ...]
    seed: int = defaults.SEED
    samples: int = defaults.SAMPLES
    n_bootstrap: int = defaults.N_BOOTSTRAP
    margin_mm: float = defaults.MARGIN_MM
    device: str = defaults.DEVICE
    protocol: str = "last-scan"
    horizon_days: tuple[float, float] = (0.0, math.inf)
    pairs: str = "all"
    plan: str = AUTO

    def protocol_spec(self) -> Protocol:
        """The :class:`Protocol` of these settings (checked)."""
        return Protocol(self.protocol, *self.horizon_days, self.pairs)


@dataclass
class CohortResult:
    """Per-row scores (one per scored patient and forecaster, sorted), skipped entries with reasons,
    per-row reliability-diagram sums (``calibration``: bin counts and sums of predicted and reference
    probabilities, for pooling) and seconds spent per patient and forecaster (``timings``; the only
    non-reproducible part)."""

    cohort_dir: Path
    settings: EvaluationSettings
    n_cases: int
    rows: list[dict]
    skipped: list[dict]
    calibration: list[dict]
    timings: list[dict]
    run: dict = dataclasses.field(default_factory=dict)  # the whole run: wall and CPU seconds, jobs (scheduler), CPUs


def find_cases(cohort_dir: str | Path) -> list[Path]:
    """The readable case manifests of a cohort folder: every ``*/case.json`` that is a file, sorted by folder name
    (:func:`.cohort_folder.scan_cohort`)."""
    return scan_cohort(cohort_dir)[0]


def recurrences(case: Case, target: Timepoint) -> tuple[dict[str, np.ndarray], str]:
    """The future tumor per recurrence definition (bool masks) and where the label-based ones come from:
    the target's BraTS labels (``"labels"``) or, without labels, its GTV (``"gtv"``). The ``gtv``
    definition is always the target's GTV."""
    gtv = case.gtv(target)
    labels = case.labels(target)
    if labels is None:
        return {d: gtv for d in DEFINITIONS}, "gtv"
    return {**{d: evaluation.recurrence_mask(labels, d) for d in evaluation.RECURRENCE_LABELS}, "gtv": gtv}, "labels"


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else math.nan


def score_maps(
    probability: np.ndarray,
    truth_gtv: np.ndarray,
    spacing: Sequence[float],
    brain: np.ndarray | None = None,
    truth: np.ndarray | None = None,
) -> dict[str, float]:
    """Probability-map metrics of a forecast ``probability`` against the truth GTV's logistic map (``truth``, when
    computed already), inside ``brain`` (or the whole grid): RMSE, BCE (nats), KL (nats), ECE, Pearson r on
    P > 0.2, and the Dice, HD95 (mm) and volume error (mL) of the forecast tumor (phi <= 0, on any voxel size)
    against the GTV."""
    truth = sdf.tumor_probability(truth_gtv, spacing) if truth is None else truth
    predicted = np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0)
    tumor = sdf.tumor_region(predicted)
    return {
        "rmse": evaluation.rmse(predicted, truth, brain),
        "bce": evaluation.bce(predicted, truth, brain),
        "kl": evaluation.kl_divergence(predicted, truth, brain),
        "ece": evaluation.expected_calibration_error(predicted, truth, N_BINS, brain),
        "dice_tumor": evaluation.dice(
            tumor if brain is None else tumor & brain, truth_gtv if brain is None else truth_gtv & brain
        ),
        "pearson_0.2": _finite(evaluation.pearson_r(predicted, truth, 0.2, brain)),
        "hd95_mm": _finite(evaluation.hd95(tumor, truth_gtv, spacing)),
        "volume_error_ml": evaluation.volume_ml(tumor, spacing) - evaluation.volume_ml(truth_gtv, spacing),
        "volume_forecast_ml": evaluation.volume_ml(tumor, spacing),
        "volume_truth_ml": evaluation.volume_ml(truth_gtv, spacing),
    }


def score_plans(plans: dict[str, np.ndarray], future: dict[str, np.ndarray]) -> dict[str, float]:
    """Coverage (fraction in [0, 1]; NaN for an empty recurrence) of each plan (``forecast``,
    ``standard``) for each recurrence definition, as ``coverage_<plan>_<definition>`` columns."""
    return {
        f"coverage_{plan}_{DEFINITIONS[d]}": evaluation.coverage(plans[plan], mask)
        for d, mask in future.items()
        for plan in PLANS
    }


def score_image(
    image: np.ndarray | None,
    truth_flair: np.ndarray,
    slices: np.ndarray,
    brain: np.ndarray | None,
    prefix: str = "flair",
) -> dict[str, float]:
    """``<prefix>_psnr_db`` and ``<prefix>_ssim`` of ``image`` against the target's FLAIR on the tumour ``slices``
    (:func:`metrics_images.slice_similarity`); NaN without an image."""
    if image is None:
        return {f"{prefix}_psnr_db": math.nan, f"{prefix}_ssim": math.nan}
    scores = metrics_images.slice_similarity(image, truth_flair, slices, brain)
    return {f"{prefix}_psnr_db": scores["psnr_db"], f"{prefix}_ssim": scores["ssim"]}


def reliability_sums(
    probability: np.ndarray,
    truth_gtv: np.ndarray,
    spacing: Sequence[float],
    brain: np.ndarray | None = None,
    truth: np.ndarray | None = None,
) -> dict[str, list]:
    """Per-bin voxel counts and sums of the predicted and reference (truth, the GTV's logistic map: ``truth`` when
    computed already) probabilities of :func:`evaluation.reliability_diagram` (10 bins, inside ``brain``):
    additive over patients."""
    truth = sdf.tumor_probability(truth_gtv, spacing) if truth is None else truth
    d = evaluation.reliability_diagram(np.clip(probability, 0.0, 1.0), truth, N_BINS, brain)
    return {
        "counts": d.counts.tolist(),
        "confidence_sum": np.nan_to_num(d.confidence * d.counts).tolist(),
        "frequency_sum": np.nan_to_num(d.frequency * d.counts).tolist(),
    }


def pooled_reliability(entries: Sequence[dict]) -> evaluation.ReliabilityDiagram:
    """The reliability diagram of all voxels of ``entries`` (outputs of :func:`reliability_sums`)."""
    counts = np.sum([e["counts"] for e in entries], axis=0).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.sum([e["confidence_sum"] for e in entries], axis=0) / counts
        frequency = np.sum([e["frequency_sum"] for e in entries], axis=0) / counts
    return evaluation.ReliabilityDiagram(np.linspace(0.0, 1.0, N_BINS + 1), confidence, frequency, counts)


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"


@dataclass
class _Patient:
    """One patient's case and what its forecasts share: per input prefix the cut case (its derived volumes: signed
    distances, evolution field, standard CTV...) and one growth fit, per target scan the truth (GTV, its logistic
    map, the future tumour per recurrence definition and their source), per (prefix, target) the last input FLAIR's
    similarity to the target FLAIR (the baseline)."""

    case: Case
    settings: EvaluationSettings
    brain: np.ndarray | None
    prefixes: dict[int, Case] = dataclasses.field(default_factory=dict)
    fits: dict[int, GrowthFit] = dataclasses.field(default_factory=dict)
    truths: dict[int, tuple] = dataclasses.field(default_factory=dict)
    baselines: dict[tuple[int, int], dict] = dataclasses.field(default_factory=dict)

    def inputs(self, n_inputs: int) -> Case:
        """The case cut to its first ``n_inputs`` scans (:func:`prefix_case`), made once."""
        if n_inputs not in self.prefixes:
            self.prefixes[n_inputs] = prefix_case(self.case, n_inputs)
        return self.prefixes[n_inputs]

    def fit(self, n_inputs: int) -> GrowthFit:
        """The growth fit of the first ``n_inputs`` scans (:func:`fit_case_growth`), made once."""
        if n_inputs not in self.fits:
            self.fits[n_inputs] = fit_case_growth(self.inputs(n_inputs), self.settings.n_bootstrap, self.settings.seed)
        return self.fits[n_inputs]

    def truth(self, j: int) -> tuple:
        """Scan ``j``'s GTV, its logistic probability map, the future tumour per definition and their source."""
        if j not in self.truths:
            target = self.case.timepoints[j]
            gtv = self.case.gtv(target)
            self.truths[j] = (gtv, sdf.tumor_probability(gtv, self.case.grid.spacing), *recurrences(self.case, target))
        return self.truths[j]

    def images(self, task: Task, truth_gtv: np.ndarray, image: np.ndarray | None) -> dict[str, float]:
        """The forecast FLAIR's and the last input FLAIR's similarity to the target FLAIR on the slices holding the
        last input or the target GTV (NaN when a scan has no FLAIR)."""
        inputs, target = self.inputs(task.n_inputs), self.case.timepoints[task.target]
        last = inputs.timepoints[-1]
        if "flair" not in target.images or "flair" not in last.images:
            return {m: math.nan for m in IMAGE_METRICS}
        truth, last_flair = self.case.image(target, "flair"), inputs.image(last, "flair")
        slices = np.nonzero((truth_gtv | inputs.gtv(last)).any(axis=(1, 2)))[0]
        key = (task.n_inputs, task.target)
        if key not in self.baselines:
            self.baselines[key] = score_image(last_flair, truth, slices, self.brain, "last_flair")
        return {**score_image(image, truth, slices, self.brain), **self.baselines[key]}


def _score_task(patient: _Patient, name: str, task: Task) -> tuple[dict, dict]:
    """Forecast ``task`` with the forecaster ``name`` and score it: its row (:data:`COLUMNS`) and its reliability
    sums (:func:`reliability_sums`)."""
    case, settings, brain = patient.case, patient.settings, patient.brain
    spacing = case.grid.spacing
    inputs, target = patient.inputs(task.n_inputs), case.timepoints[task.target]
    last_prior = inputs.timepoints[-1].day
    gap = target.day - last_prior
    truth_gtv, truth_map, future, source = patient.truth(task.target)
    fc = run_forecast(
        inputs,
        target.day,
        name,
        samples=settings.samples,
        seed=settings.seed,
        device=settings.device,
        margin_mm=settings.margin_mm,
        n_bootstrap=settings.n_bootstrap,
        growth=patient.fit(task.n_inputs),
        plan=settings.plan,
    )
    row = {
        "patient_id": case.patient_id,
        "forecaster": name,
        "pair_id": f"{case.patient_id}:{task.n_inputs}->{task.target}",
        "target_index": task.target,
        "n_priors": task.n_inputs,
        "last_prior_day": last_prior,
        "target_day": target.day,
        "gap_days": gap,
        "gap_bin": gap_bin(gap),
        "recurrence_source": source,
        **score_maps(fc.output.probability, truth_gtv, spacing, brain, truth_map),
        "plan": fc.plan,
        "ctv_volume_ml": evaluation.volume_ml(fc.ctv_standard, spacing),
        **score_plans({"forecast": fc.ctv_forecast, "standard": fc.ctv_standard}, future),
        **patient.images(task, truth_gtv, fc.output.image),
    }
    sums = reliability_sums(fc.output.probability, truth_gtv, spacing, brain, truth_map)
    return {c: row[c] for c in COLUMNS}, sums


def _patient_tasks(
    case: Case, settings: EvaluationSettings, protocol: Protocol, volumes: Callable | None
) -> dict[str, tuple[list[Task], str | None]]:
    """Per forecaster the tasks of ``protocol`` for this patient, or none and the reason (with ``first-per-bin`` pairs
    every forecaster gets the tasks of the one that needs the most scans: the same pairs for all)."""
    need = {name: entry(name).min_scans for name in settings.forecasters}
    if protocol.pairs == "first-per-bin":  # the same pairs for every forecaster of the run
        need = dict.fromkeys(need, max(need.values()))
    plans: dict[str, tuple[list[Task], str | None]] = {}
    for name in settings.forecasters:
        try:
            plans[name] = plan_tasks(case, protocol, need[name], volumes)
        except _SCORING_ERRORS as exc:
            plans[name] = [], _reason(exc)
    return plans


def evaluate_patient(case_path: str | Path, settings: EvaluationSettings) -> tuple[list[dict], ...]:
    """Forecast and score one patient's tasks with every forecaster: (rows, skipped, calibration, timings)."""
    case_path = Path(case_path)
    pid = case_path.parent.name
    protocol = settings.protocol_spec()
    try:
        case = load_case(case_path)
        pid = case.patient_id
        brain = case.brain_mask()
        volumes = scan_volumes(case) if protocol.name == "recurrence" else None
    except _SCORING_ERRORS as exc:
        return [], [{"patient_id": pid, "forecaster": None, "reason": _reason(exc)}], [], []
    plans = _patient_tasks(case, settings, protocol, volumes)
    reasons = {why for tasks, why in plans.values() if not tasks}
    if len(reasons) == 1 and not any(tasks for tasks, _ in plans.values()):  # the patient serves no forecaster
        return [], [{"patient_id": pid, "forecaster": None, "reason": f"{case_path}: {reasons.pop()}"}], [], []
    patient = _Patient(case, settings, brain)
    rows, skipped, calibration, timings = [], [], [], []
    for name, (tasks, why) in plans.items():
        if not tasks:
            skipped.append({"patient_id": pid, "forecaster": name, "reason": why})
            continue
        for task in tasks:
            start, cpu_start = time.perf_counter(), time.process_time()
            pair = f"{pid}:{task.n_inputs}->{task.target}"
            try:
                row, sums = _score_task(patient, name, task)
            except _SCORING_ERRORS as exc:
                skipped.append({"patient_id": pair, "forecaster": name, "reason": _reason(exc)})
                continue
            rows.append(row)
            calibration.append({"patient_id": pid, "pair_id": pair, "forecaster": name, **sums})
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            timings.append(
                {"patient_id": pid, "pair_id": pair, "forecaster": name, "seconds": seconds, "cpu_seconds": cpu_seconds}
            )
    return rows, skipped, calibration, timings


def _failed_patient(path: Path, exc: BaseException) -> tuple[list[dict], ...]:
    """The result of a patient whose evaluation raised outside the scoring errors (an unexpected error type, a
    worker process that died): one skipped entry naming the case and the reason, so the other patients' scores
    are kept."""
    return [], [{"patient_id": Path(path).parent.name, "forecaster": None, "reason": f"{path}: {_reason(exc)}"}], [], []


def _order(settings: EvaluationSettings) -> Callable[[dict], tuple]:
    rank = {name: i for i, name in enumerate(settings.forecasters)}
    return lambda r: (
        r["patient_id"],
        -1 if r["forecaster"] is None else rank[r["forecaster"]],
        r.get("n_priors", 0),
        r.get("target_index", 0),
    )


def _share_cores(workers: int) -> None:
    """Worker initializer: onnxruntime sessions get the worker's share of the cores (at least one thread) unless
    ``$GLIOMAFORECAST_ORT_THREADS`` says otherwise, so ``--jobs N`` does not start N x cores spinning threads."""
    os.environ.setdefault(models.THREADS_VAR, str(max(1, (os.cpu_count() or 1) // workers)))


def _cohort_cases(
    cohort_dir: str | Path, settings: EvaluationSettings, jobs: int, scheduler: str | None = None
) -> tuple[list[Path], list[dict]]:
    """The readable case manifests of ``cohort_dir`` and the skipped entries of the patients that cannot be read
    (:func:`.cohort_folder.scan_cohort`), after the settings are checked: known forecasters (at least one), a valid
    protocol, at least one job (only one with a ``scheduler``, a valid one), at least one readable case, no
    patient_id given twice."""
    for name in settings.forecasters:
        entry(name)
    settings.protocol_spec()
    if not settings.forecasters:
        raise InputError(None, "forecaster", "no forecaster given")
    if jobs < 1:
        raise InputError(None, "jobs", f"must be at least 1, got {jobs}")
    if scheduler is not None:
        scheduling.parse_scheduler(scheduler)
        if jobs != 1:
            raise InputError(
                None, "jobs", f"cannot be combined with a scheduler (its workers are the jobs), got {jobs}"
            )
    paths, unreadable = scan_cohort(cohort_dir)
    if not paths:
        first = f" ({len(unreadable)} unreadable; first: {unreadable[0]['reason']})" if unreadable else ""
        raise InputError(cohort_dir, None, f"no patient folder with a case.json in the cohort folder{first}")
    check_distinct_patients(paths)
    return paths, unreadable


def _scheduled_results(
    paths: Sequence[Path], settings: EvaluationSettings, client: object
) -> Iterator[tuple[Path, tuple[list[dict], ...]]]:
    """(case path, :func:`evaluate_patient` result) per patient as each finishes on the workers of a dask.distributed
    ``client`` (:func:`scheduling.as_completed_tasks`: the patients of a worker that dies are rerun on another), which
    read the case by its absolute path (the workers' working folder may differ); a failed patient (also one whose
    workers kept dying) gets :func:`_failed_patient`."""
    by_task = {os.path.abspath(path): path for path in paths}
    for task, result, exc in scheduling.as_completed_tasks(client, evaluate_patient, list(by_task), settings):
        yield by_task[task], result if exc is None else _failed_patient(by_task[task], exc)


def _patient_results(
    paths: Sequence[Path], settings: EvaluationSettings, jobs: int, client: object = None
) -> Iterator[tuple[Path, tuple[list[dict], ...]]]:
    """(case path, :func:`evaluate_patient` result) per patient, as each finishes: on the workers of a dask
    ``client`` (:func:`_scheduled_results`), in this process (``jobs`` 1 or a single patient) or in ``jobs`` worker
    processes; a patient whose evaluation fails gets :func:`_failed_patient`."""
    if client is not None:
        yield from _scheduled_results(paths, settings, client)
        return
    if jobs == 1 or len(paths) == 1:
        for path in paths:
            try:
                result = evaluate_patient(path, settings)
            except Exception as exc:  # noqa: BLE001 - one patient's failure must not lose the others' scores
                result = _failed_patient(path, exc)
            yield path, result
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process holding library threads
    workers = min(jobs, len(paths))
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_share_cores, initargs=(workers,)
    ) as pool:
        futures = {pool.submit(evaluate_patient, str(p), settings): p for p in paths}
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker's failure (even its death) skips one patient
                result = _failed_patient(futures[future], exc)
            yield futures[future], result


def _run_record(
    start: float, load: float, jobs: int, timings: Sequence[dict], scheduler: str | None, workers: tuple[int, int]
) -> dict:
    """The whole run: wall seconds since ``start``, jobs (with a ``scheduler``: its spec and its ``workers`` at the
    start, with their threads, the patients run at once, as the jobs), CPUs of this machine, load average at the
    start (``load``) and at the end, and the CPU seconds of the forecasts."""
    return {
        "wall_seconds": time.perf_counter() - start,
        "jobs": jobs if scheduler is None else workers[1],
        **({} if scheduler is None else {"scheduler": scheduler, "workers": workers[0]}),
        "cpus": os.cpu_count(),
        "load_average_at_start": load,
        "load_average_at_end": os.getloadavg()[0],
        "cpu_seconds_of_forecasts": float(sum(t["cpu_seconds"] for t in timings)),
    }


@contextlib.contextmanager
def _cluster(scheduler: str | None, cohort_dir: str | Path) -> Iterator[object]:
    """The dask.distributed client of ``scheduler`` (:func:`scheduling.open_client`) once every worker sees
    ``cohort_dir``, closed on exit; None without a scheduler."""
    if scheduler is None:
        yield None
        return
    with scheduling.open_client(scheduler) as client:
        scheduling.check_workers_see(client, Path(cohort_dir))
        yield client


def evaluate_cohort(
    cohort_dir: str | Path,
    settings: EvaluationSettings,
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
    scheduler: str | None = None,
) -> CohortResult:
    """Evaluate every patient of ``cohort_dir`` with ``jobs`` worker processes (1: in this process) or as tasks on
    the workers of a dask.distributed ``scheduler`` (``local``, ``local:N`` or an address: :mod:`..scheduling`).
    Unknown forecasters, a folder without cases and a bad or unreachable scheduler are InputErrors; results are
    sorted, so they depend on neither."""
    paths, unreadable = _cohort_cases(cohort_dir, settings, jobs, scheduler)
    say = progress or (lambda _msg: None)
    collected: tuple[list[dict], ...] = ([], list(unreadable), [], [])  # rows, skipped, calibration, timings
    with _cluster(scheduler, cohort_dir) as client:
        workers = (0, 0) if client is None else scheduling.worker_count(client)
        start, load = time.perf_counter(), os.getloadavg()[0]
        for path, result in _patient_results(paths, settings, jobs, client):
            for into, part in zip(collected, result):
                into.extend(part)
            say(f"{path.parent.name}: {len(result[0])} scored, {len(result[1])} skipped")
        run = _run_record(start, load, jobs, collected[3], scheduler, workers)
    rows, skipped, calibration, timings = collected
    skipped = [{**r, "reason": shown_reason(r["reason"], cohort_dir)} for r in skipped]
    key = _order(settings)
    return CohortResult(
        Path(cohort_dir),
        settings,
        len(paths),
        sorted(rows, key=key),
        sorted(skipped, key=key),
        sorted(calibration, key=key),
        sorted(timings, key=key),
        run,
    )


# --- summary -------------------------------------------------------------------------------------


def _stats(values: Iterable[float]) -> dict[str, float | int | None]:
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"n": 0, "mean": None, "sd": None, "median": None, "q1": None, "q3": None}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
    }


def _wilcoxon(model: Sequence[float], reference: Sequence[float], ids: Sequence[str]) -> dict:
    """``evaluation.compare_plans`` as JSON (no per-patient rows); an undefined test gives a null p-value
    with the reason."""
    try:
        c = evaluation.compare_plans(model, reference, ids)
    except ValueError as exc:
        valid = [not (math.isnan(a) or math.isnan(b)) for a, b in zip(model, reference)]
        return {
            "n": int(sum(valid)),
            "statistic": None,
            "p_value": None,
            "effect_size": None,
            "median_difference": 0.0 if any(valid) else None,
            "n_excluded": len(valid) - int(sum(valid)),
            "reason": str(exc),
        }
    return {
        "n": c.n,
        "statistic": c.statistic,
        "p_value": c.p_value,
        "effect_size": c.effect_size,
        "median_difference": c.median_difference,
        "n_excluded": c.n_excluded,
    }


def _per_patient(rows: Sequence[dict], column: str) -> tuple[list[float], list[str]]:
    """The mean of ``column`` per patient (NaN rows left out; a patient with only NaN gives NaN), patients in
    order of first appearance: one independent value per patient for the Wilcoxon tests."""
    values: dict[str, list[float]] = {}
    for r in rows:
        values.setdefault(r["patient_id"], []).append(r[column])
    means = []
    for v in values.values():
        finite = [x for x in v if isinstance(x, (int, float)) and math.isfinite(x)]
        means.append(float(np.mean(finite)) if finite else math.nan)
    return means, list(values)


def _coverage_summary(rows: Sequence[dict], suffix: str) -> dict:
    fc_all = [r[f"coverage_forecast_{suffix}"] for r in rows]
    st_all = [r[f"coverage_standard_{suffix}"] for r in rows]
    fc, ids = _per_patient(rows, f"coverage_forecast_{suffix}")
    st, _ = _per_patient(rows, f"coverage_standard_{suffix}")
    return {"forecast": _stats(fc_all), "standard": _stats(st_all), "wilcoxon": _wilcoxon(fc, st, ids)}


def plan_summary(result: CohortResult) -> dict:
    """The standard plan of a run: the convention asked for (``requested``), the margin (mm), how many scored forecasts
    used each convention (``forecasts``; ``auto`` may choose per patient) and, when all used one, its record
    (``standard_plan.plan_record``)."""
    s = result.settings
    used = dict(sorted(Counter(r["plan"] for r in result.rows).items()))
    single = plan_record(next(iter(used)), s.margin_mm) if len(used) == 1 else {}
    return {**single, "requested": s.plan, "margin_mm": float(s.margin_mm), "forecasts": used}


def _coverage_by_definition(rows: Sequence[dict]) -> dict[str, dict]:
    """Per recurrence definition: coverage of both plans with the Wilcoxon test (:func:`_coverage_summary`), also on
    the forecasts whose recurrence leaves the standard CTV (``outside_margin``)."""
    coverage = {}
    for d, suffix in DEFINITIONS.items():
        outside = [r for r in rows if r[f"coverage_standard_{suffix}"] < 1.0]  # NaN compares False
        coverage[d] = {
            **_coverage_summary(rows, suffix),
            "outside_margin": {
                "n": len(outside),
                "n_defined": sum(math.isfinite(r[f"coverage_standard_{suffix}"]) for r in rows),
                **_coverage_summary(outside, suffix),
            },
        }
    return coverage


def _gap_bins(rows: Sequence[dict], common: set[str]) -> dict[str, dict]:
    """Per time-gap bin the count and the mean of every metric over the forecasts of ``rows`` in ``common`` (those
    every forecaster scored), and how many had images."""
    bins = {}
    matched = [r for r in rows if r["pair_id"] in common]
    for label, _ in GAP_BINS:
        in_bin = [r for r in matched if r["gap_bin"] == label]
        bins[label] = {
            "n": len(in_bin),
            **{m: _stats(r[m] for r in in_bin)["mean"] for m in (*MAP_METRICS, *COVERAGE_COLUMNS, *IMAGE_METRICS)},
            "n_images": sum(math.isfinite(r["flair_ssim"]) for r in in_bin),
        }
    return bins


def _calibration_summary(entries: Sequence[dict]) -> dict | None:
    """The pooled reliability diagram of ``entries`` (:func:`pooled_reliability`) with its ECE; None without any."""
    if not entries:
        return None
    pooled = pooled_reliability(entries)
    return {
        "pooled_ece": pooled.ece,
        "bin_edges": pooled.bin_edges.tolist(),
        "confidence": pooled.confidence.tolist(),
        "frequency": pooled.frequency.tolist(),
        "counts": pooled.counts.tolist(),
    }


def _forecaster_summary(name: str, rows: Sequence[dict], common: set[str], result: CohortResult) -> dict:
    """One forecaster's summary: counts, metric statistics, coverage, time-gap bins and pooled calibration."""
    return {
        "n_scored": len(rows),
        "n_patients": len({r["patient_id"] for r in rows}),
        "metrics": {m: _stats(r[m] for r in rows) for m in (*MAP_METRICS, *IMAGE_METRICS)},
        "coverage": _coverage_by_definition(rows),
        "gap_bins": _gap_bins(rows, common),
        "calibration": _calibration_summary([c for c in result.calibration if c["forecaster"] == name]),
    }


def _forecaster_comparisons(names: Sequence[str], by_name: dict[str, list[dict]]) -> dict[str, dict]:
    """Per pair of forecasters and recurrence definition, the Wilcoxon test of their forecast plans' coverage on the
    forecasts both scored (one value per patient)."""
    pairs: dict[str, dict] = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rows_b = {r["pair_id"]: r for r in by_name[b]}
            both = [r for r in by_name[a] if r["pair_id"] in rows_b]
            pairs[f"{a} vs {b}"] = {}
            for d, suffix in DEFINITIONS.items():
                col = f"coverage_forecast_{suffix}"
                va, ids = _per_patient(both, col)
                vb, _ = _per_patient([rows_b[r["pair_id"]] for r in both], col)
                pairs[f"{a} vs {b}"][d] = _wilcoxon(va, vb, ids)
    return pairs


def _versus_persistence(names: Sequence[str], by_name: dict[str, list[dict]]) -> dict[str, dict]:
    """Every forecaster's :data:`BASELINE_METRICS` against persistence's on the forecasts both scored, one value per
    patient (empty without persistence)."""
    baseline: dict[str, dict] = {}
    if "persistence" not in by_name:
        return baseline
    ref_rows = {r["pair_id"]: r for r in by_name["persistence"]}
    for name in names:
        both = [r for r in by_name[name] if r["pair_id"] in ref_rows] if name != "persistence" else []
        if both:
            baseline[name] = {}
            for metric in BASELINE_METRICS:
                va, ids = _per_patient(both, metric)
                vb, _ = _per_patient([ref_rows[r["pair_id"]] for r in both], metric)
                baseline[name][metric] = {"n_forecasts": len(both), **_wilcoxon(va, vb, ids)}
    return baseline


def summarize(result: CohortResult) -> dict:
    """The summary (JSON-ready, NaN as null): per forecaster the metric statistics, coverage of both plans
    per recurrence definition with the Wilcoxon test of forecast vs standard, per time-gap bin, and the
    pooled reliability diagram (voxels of all patients); then
    forecaster-vs-forecaster tests on the forecast plan's coverage (patients scored by both)."""
    s = result.settings
    by_name = {name: [r for r in result.rows if r["forecaster"] == name] for name in s.forecasters}
    scored = [{r["pair_id"] for r in rows} for rows in by_name.values() if rows]
    common = set.intersection(*scored) if scored else set()  # per-bin tables: the forecasts every forecaster scored
    summary = {
        "schema": SCHEMA,
        "cohort": result.cohort_dir.resolve().name,  # its name only: no output holds an absolute path
        "settings": dataclasses.asdict(s),
        "n_cases": result.n_cases,
        "protocol": s.protocol,
        "units": UNITS,
        "standard_plan": plan_summary(result),
        "gap_bins": [label for label, _ in GAP_BINS],
        "forecasters": {name: _forecaster_summary(name, rows, common, result) for name, rows in by_name.items()},
        "forecaster_comparisons": _forecaster_comparisons(s.forecasters, by_name),
        "versus_persistence": _versus_persistence(s.forecasters, by_name),
        "skipped": result.skipped,
    }
    return _json_ready(summary)


def timing_summary(result: CohortResult) -> dict[str, dict]:
    """Per forecaster: forecasts timed, mean wall seconds per forecast and per patient, and the CPU seconds of the
    worker process (all its threads; ``total_cpu_s``): on a shared machine the wall time grows with the load, the
    CPU time much less. The only non-reproducible figures, kept out of summary.json."""
    out = {}
    for name in result.settings.forecasters:
        mine = [t for t in result.timings if t["forecaster"] == name]
        seconds = [t["seconds"] for t in mine]
        cpu = [t.get("cpu_seconds", math.nan) for t in mine]
        patients = {t["patient_id"] for t in mine}
        out[name] = {
            "n_forecasts": len(seconds),
            "mean_s_per_forecast": float(np.mean(seconds)) if seconds else None,
            "mean_s_per_patient": float(np.sum(seconds) / len(patients)) if patients else None,
            "mean_cpu_s_per_forecast": float(np.mean(cpu)) if cpu else None,
            "total_cpu_s": float(np.sum(cpu)) if cpu else None,
        }
    return out


def _json_ready(value):
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- files ---------------------------------------------------------------------------------------


def rows_csv(rows: Sequence[dict]) -> str:
    """The per-patient table as CSV text: floats with 6 significant digits, NaN as an empty cell."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: ("" if isinstance(v, float) and math.isnan(v) else f"{v:.6g}" if isinstance(v, float) else v)
                for k, v in row.items()
            }
        )
    return buf.getvalue()


def write_results(result: CohortResult, out_dir: Path) -> list[Path]:
    """Write patients.csv, skipped.csv, summary.json, boxplots.png, calibration_<forecaster>.png (pooled
    reliability diagram) and timings.json into the existing folder ``out_dir``; every file but
    timings.json is reproducible byte for byte. Returns the paths written."""
    from ..output.figures import save_png
    from .figures import plot_boxplots

    out_dir = Path(out_dir)
    summary = summarize(result)
    (out_dir / "patients.csv").write_text(rows_csv(result.rows))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["patient_id", "forecaster", "reason"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({**r, "forecaster": r["forecaster"] or ""} for r in result.skipped)
    (out_dir / "skipped.csv").write_text(buf.getvalue())
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_boxplots(out_dir / "boxplots.png", result.rows, result.settings.forecasters, summary)
    written = [out_dir / n for n in ("patients.csv", "skipped.csv", "summary.json", "boxplots.png")]
    for name in result.settings.forecasters:
        entries = [c for c in result.calibration if c["forecaster"] == name]
        if entries:
            n_patients = len(entries)
            fig = evaluation.plot_reliability_diagram(
                pooled_reliability(entries), f"{name}, {n_patients} patients pooled"
            )
            written.append(save_png(fig, out_dir / f"calibration_{name}.png"))
    (out_dir / "timings.json").write_text(
        json.dumps(
            {
                "unit": "seconds per scored forecast",
                "run": result.run,
                "per_forecaster": timing_summary(result),
                "timings": result.timings,
            },
            indent=2,
        )
        + "\n"
    )
    return [*written, out_dir / "timings.json"]
