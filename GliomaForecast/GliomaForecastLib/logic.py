"""ForecastLogic: the module's console methods on MRML nodes (no Qt), built on the core ``gliomaforecast``.

Every method reads its inputs through :mod:`GliomaForecastLib.adapters` on the input's exact geometry, calls one
core function, and returns new MRML nodes on that geometry (inputs are never modified). Units: mm, days, mL.

The long methods are split in three so the panel can run the numerics off the GUI thread: ``<method>Job(...)``
gathers plain data from MRML (main thread) and returns a :class:`Job` whose ``compute`` is a pure function of
:mod:`GliomaForecastLib.compute` (thread-safe, no MRML) and whose ``build`` makes the nodes (main thread). The
console methods run the three in sequence.

Example (Slicer's Python console)::

    from GliomaForecastLib.logic import ForecastLogic
    logic = ForecastLogic()
    prob = logic.probabilityMap(getNode("GTV day 95"), "GTV")
    table, chart = logic.fitGrowth([(0, seg0, "GTV"), (95, seg1, "GTV")], rtStartDay=21)
    targets = logic.targetVolumes(seg1, "GTV", scoreVolume=prob, marginMm=15.0, plan="estro-eano")
    prepared = logic.prepare([(0, {"flair": getNode("FLAIR day 0"), "t1": getNode("T1 day 0")}, seg0),
                              (95, {"flair": getNode("FLAIR day 95"), "t1": getNode("T1 day 95")}, seg1)])
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import slicer
import vtk

from gliomaforecast import defaults
from gliomaforecast.targets import standard_plan
from gliomaforecast.io.case import IMAGE_NAMES, TISSUE_NAMES, load_case
from gliomaforecast.forecasters import DEFAULT_FORECASTER
from gliomaforecast.geometry import Grid, resample_to

from . import adapters, compute, conventions
from .progress import ProgressCallback, Steps

DAY_ATTRIBUTE = "GliomaForecast.Day"
MODALITY_ATTRIBUTE = "GliomaForecast.Modality"  # flair, t1ce, t1, t2 or adc (gliomaforecast.io.case.IMAGE_NAMES)
PLAN_ATTRIBUTE = "GliomaForecast.Plan"  # the planning convention of a target segmentation (standard_plan.CONVENTIONS)
PLAN_SEED_ATTRIBUTE = "GliomaForecast.PlanSeed"  # what its CTVs grew from (standard_plan.SEED_NAMES)
PLAN_WARNING_ATTRIBUTE = "GliomaForecast.PlanWarning"  # why plan auto fell back to flair; absent when it did not
_DAY_IN_NAME = re.compile(r"(?:\bday[\s_]*|(?<![A-Za-z0-9])d)(\d+(?:\.\d+)?)(?![\d.])", re.IGNORECASE)

REGISTRATION_QUALITY_ATTRIBUTE = "GliomaForecast.RegistrationQuality"  # a prepared scan's transform: quality, -1..1
PREPARED_SUFFIX = " (prepared)"  # a volume resampled onto the planning grid is named "<its source's name> (prepared)"

MaskSource = Union["slicer.vtkMRMLVolumeNode", Tuple["slicer.vtkMRMLSegmentationNode", str]]
# A scan's GTV for "Prepare": a segmentation (its "GTV" segment), a (segmentation, segment) pair, or a volume node
# (labelmap; voxels > 0 are the GTV).
GtvSource = Union["slicer.vtkMRMLSegmentationNode", tuple["slicer.vtkMRMLSegmentationNode", str],
                  "slicer.vtkMRMLVolumeNode"]


def timepointDay(node: "slicer.vtkMRMLNode") -> Optional[float]:
    """The scan day (days) of a node: its ``GliomaForecast.Day`` attribute, else a day in its name ("GTV day 95",
    "d095_gtv"), else None."""
    value = node.GetAttribute(DAY_ATTRIBUTE)
    if value:
        return float(value)
    match = _DAY_IN_NAME.search(node.GetName() or "")
    return float(match.group(1)) if match else None


def planWarning(targetsNode: "slicer.vtkMRMLSegmentationNode") -> Optional[str]:
    """Why the standard plan of a target segmentation fell back from ``auto`` to ``flair`` (one line), or None."""
    return targetsNode.GetAttribute(PLAN_WARNING_ATTRIBUTE) or None


@dataclass
class LoadedCase:
    """The MRML nodes of a case loaded by :meth:`ForecastLogic.loadCase` (days in days)."""

    patientId: str
    days: list
    rtStartDay: Optional[float]
    flair: dict = field(default_factory=dict)  # day -> vtkMRMLScalarVolumeNode
    images: dict = field(default_factory=dict)  # day -> {modality: vtkMRMLScalarVolumeNode}, the FLAIR included
    gtv: dict = field(default_factory=dict)  # day -> vtkMRMLSegmentationNode: "GTV" (+ that day's label segments)
    brainMask: Optional["slicer.vtkMRMLLabelMapVolumeNode"] = None
    dose: Optional["slicer.vtkMRMLScalarVolumeNode"] = None
    studyItemId: int = 0

    def timepoints(self) -> list:
        """``(day, segmentationNode, "GTV")`` for :meth:`ForecastLogic.fitGrowth`."""
        return [(day, self.gtv[day], "GTV") for day in self.days]


@dataclass
class ForecastNodes:
    """The MRML outputs of :meth:`ForecastLogic.forecast` for the target ``day`` (days)."""

    day: float
    probability: Optional["slicer.vtkMRMLScalarVolumeNode"] = None
    uncertainty: Optional["slicer.vtkMRMLScalarVolumeNode"] = None
    flair: Optional["slicer.vtkMRMLScalarVolumeNode"] = None
    images: dict = field(default_factory=dict)  # further synthesized sequences by modality (e.g. "t1ce")
    scenarios: dict = field(default_factory=dict)  # alternative forecasts: name -> {"probability": node, "flair": node}
    displacement: Optional["slicer.vtkMRMLGridTransformNode"] = None
    table: Optional["slicer.vtkMRMLTableNode"] = None
    chart: Optional["slicer.vtkMRMLPlotChartNode"] = None
    targets: Optional["slicer.vtkMRMLSegmentationNode"] = None
    notes: list = field(default_factory=list)  # the forecaster's notes, then the plan's fallback warning (if any)
    warnings: list = field(default_factory=list)  # what the panel shows when done: plan fallback, input shift
    timings: dict = field(default_factory=dict)


@dataclass
class PreparedNodes:
    """The MRML outputs of :meth:`ForecastLogic.prepare`, every volume on the planning scan's exact grid (the first
    scan's FLAIR, else its first image).

    ``days`` (days, increasing; the first is the planning scan); ``images``: day -> {modality: scalar volume named
    "<source name> (prepared)"}; ``gtv``: day -> segmentation (the GTV segment and the scan's BraTS label segments)
    referencing that day's prepared image; ``transforms``: day -> linear transform node "Scan day D to planning" of
    each later scan (its transform *to* parent maps the scan's original RAS points onto the planning scan's: put the
    original volumes under it to see them aligned); ``registrations``: the core's ``SessionRegistration`` of each later
    scan (ITK transform, ``quality`` -1..1, ``source``, ``kind``); ``brainMask`` (labelmap, "Brain mask (derived)"
    when derived, else "(prepared)"), ``tissue`` ({"wm", "gm", "csf"}: scalar volumes, "WM (derived)"...), ``dose``
    (Gy) or None; ``provenance`` (the core's: how the brain mask and tissue maps came about); ``warnings``: one line
    per poor registration, its quality stated; ``gtvVolumesMl``: each scan's GTV (mL) on the planning grid."""

    days: list
    images: dict = field(default_factory=dict)
    gtv: dict = field(default_factory=dict)
    transforms: dict = field(default_factory=dict)
    registrations: list = field(default_factory=list)
    brainMask: Optional[slicer.vtkMRMLLabelMapVolumeNode] = None
    tissue: dict = field(default_factory=dict)
    dose: Optional[slicer.vtkMRMLScalarVolumeNode] = None
    provenance: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    gtvVolumesMl: list = field(default_factory=list)

    def segmentations(self) -> list:
        """The prepared GTV segmentations in day order (the panel's new scans)."""
        return [self.gtv[day] for day in self.days if day in self.gtv]

    def records(self) -> list:
        """Each later scan's registration as a JSON-ready dict (day, source, kind, fixed, moving, quality)."""
        return [r.record(None) for r in self.registrations]

    def planningImage(self) -> Optional[slicer.vtkMRMLScalarVolumeNode]:
        """The planning scan's prepared FLAIR (else its first prepared image)."""
        images = self.images.get(self.days[0], {}) if self.days else {}
        return images["flair"] if "flair" in images else next(iter(images.values()), None)


@dataclass(frozen=True)
class Job:
    """A console method split for running off the GUI thread.

    ``compute(progress, cancel)`` is a pure function of the plain data gathered from MRML when the job was made
    (numpy arrays, Grid, days, settings): it touches no node, so it may run in a worker thread
    (:class:`GliomaForecastLib.background.BackgroundTask`); it reports fractions below
    :data:`GliomaForecastLib.compute.BUILD_FRACTION`. ``build(result)`` creates the MRML nodes from its result and
    must run on the main thread. ``title`` names the work for a status line."""

    title: str
    compute: Callable[[Optional[ProgressCallback], Optional[threading.Event]], Any]
    build: Callable[[Any], Any]

    def run(self, progress: Optional[ProgressCallback] = None, cancel: Optional[threading.Event] = None) -> Any:
        """``compute`` then ``build`` in the calling thread; a cancel set before building raises
        :class:`GliomaForecastLib.progress.Cancelled` and leaves no output node."""
        steps = Steps(progress, cancel)
        result = self.compute(progress, cancel)
        steps.step(compute.BUILD_FRACTION, "Building the output nodes")
        output = self.build(result)
        steps.done()
        return output


class ForecastLogic:
    """Console methods of the Glioma Forecast module. ``scene`` defaults to ``slicer.mrmlScene``.

    Long methods take ``progress(fraction, message)`` and ``cancel`` (a ``threading.Event``); a cancelled call
    raises :class:`GliomaForecastLib.progress.Cancelled` and leaves no output node in the scene.
    """

    def __init__(self, scene: Optional["slicer.vtkMRMLScene"] = None) -> None:
        self._scene = scene

    @property
    def scene(self) -> "slicer.vtkMRMLScene":
        scene = self._scene if self._scene is not None else getattr(slicer, "mrmlScene", None)
        if scene is None:
            raise RuntimeError("no MRML scene: pass one to ForecastLogic(scene) or set slicer.mrmlScene")
        return scene

    # --- loading a case ----------------------------------------------------------------------------
    def loadCase(self, casePath: Union[str, Path]) -> LoadedCase:
        """Load a case manifest (``case.json``, see ``gliomaforecast.io.case``) as MRML nodes on its exact geometry:
        "FLAIR day D" (and "T1CE day D", "T1 day D", "T2 day D" where given: ``GliomaForecast.Modality``
        attribute) volumes, "GTV day D" segmentations (segment "GTV" and, where the scan has a BraTS ``labels``
        map, its non-empty parts as the label segments of ``conventions.LABEL_SEGMENTS``: "Necrosis", "Edema",
        "Enhancing tumor", "Resection cavity"; referencing that day's FLAIR), "Brain mask" labelmap and "RT dose
        (Gy)" volume, each with its ``GliomaForecast.Day`` attribute, under a subject-hierarchy patient and study
        named after the case."""
        case = load_case(casePath)
        scene = self.scene
        loaded = LoadedCase(case.patient_id, [float(tp.day) for tp in case.timepoints], case.rt_start_day)
        grid = case.grid
        shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
        patient = shNode.CreateSubjectItem(shNode.GetSceneItemID(), case.patient_id)
        loaded.studyItemId = shNode.CreateStudyItem(patient, "GliomaForecast longitudinal MRI")

        def _place(node: "slicer.vtkMRMLNode") -> None:
            conventions.place_under(node, loaded.studyItemId)

        for tp in case.timepoints:
            day = float(tp.day)
            label = conventions.day_label(day)
            loaded.images[day] = {}
            for modality in tp.images:
                volume = adapters.add_volume(scene, case.image(tp, modality), grid, f"{modality.upper()}{label}")
                volume.SetAttribute(DAY_ATTRIBUTE, repr(day))
                volume.SetAttribute(MODALITY_ATTRIBUTE, modality)
                _place(volume)
                loaded.images[day][modality] = volume
            flair = loaded.images[day].get("flair")
            if flair is not None:
                loaded.flair[day] = flair
            segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"GTV{label}")
            segmentation.CreateDefaultDisplayNodes()
            if flair is not None:
                segmentation.SetReferenceImageGeometryParameterFromVolumeNode(flair)
            else:
                reference = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "__GliomaForecast_reference__")
                adapters.update_volume_from_array(reference, np.zeros(grid.shape, np.uint8), grid)
                segmentation.SetReferenceImageGeometryParameterFromVolumeNode(reference)
                segmentation.SetNodeReferenceID(
                    slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole(), None)
                scene.RemoveNode(reference)
            adapters.add_segment_from_mask(segmentation, case.gtv(tp), grid, "GTV", conventions.SEGMENT_COLORS["GTV"],
                                           conventions.segment_terminology("GTV"))
            labels = case.labels(tp)
            if labels is not None:
                self._addLabelSegments(segmentation, labels, grid)
            segmentation.SetAttribute(DAY_ATTRIBUTE, repr(day))
            _place(segmentation)
            loaded.gtv[day] = segmentation
        brain = case.brain_mask()
        if brain is not None:
            loaded.brainMask = adapters.add_volume(scene, brain.astype(np.uint8), grid, "Brain mask",
                                                   "vtkMRMLLabelMapVolumeNode")
            _place(loaded.brainMask)
        dose = case.dose()
        if dose is not None:
            loaded.dose = adapters.add_volume(scene, dose.astype(np.float32), grid, "RT dose (Gy)")
            _place(loaded.dose)
        return loaded

    @staticmethod
    def _addLabelSegments(segmentationNode: "slicer.vtkMRMLSegmentationNode", labels: np.ndarray, grid: Grid) -> None:
        """The non-empty BraTS parts of ``labels`` (int, on ``grid``) as segments named, colored and coded by
        ``conventions.LABEL_SEGMENTS``."""
        for label, name in conventions.LABEL_SEGMENTS.items():
            mask = labels == label
            if mask.any():
                adapters.add_segment_from_mask(segmentationNode, mask, grid, name, conventions.LABEL_COLORS[name],
                                               conventions.label_terminology(name))

    @staticmethod
    def labelMap(segmentationNode: "slicer.vtkMRMLSegmentationNode",
                 referenceVolume: Optional["slicer.vtkMRMLScalarVolumeNode"] = None) -> Optional[np.ndarray]:
        """The BraTS label map (int16, 0-4) of a segmentation rebuilt from its label segments (the names of
        ``conventions.LABEL_SEGMENTS``, as :meth:`loadCase` makes them or a user draws them), on the grid its
        segments export to (``referenceVolume`` when given); None when it has none of them."""
        return adapters.label_map_from_segments(segmentationNode, conventions.LABEL_SEGMENTS, referenceVolume)

    # --- probability map ----------------------------------------------------------------------------
    def probabilityMap(self, segmentationNode: "slicer.vtkMRMLSegmentationNode", segmentId: str,
                       beta: float = defaults.BETA_PER_MM, mu: float = defaults.MU_MM,
                       day: Optional[float] = None) -> "slicer.vtkMRMLScalarVolumeNode":
        """Tumor-presence probability P = 1 / (1 + exp(beta (phi - mu))) of a segment (``segmentId``: ID or name),
        ``phi`` its signed distance in mm on the segmentation's reference geometry, ``beta`` in 1/mm, ``mu`` in mm.

        Returns a float32 scalar volume in [0, 1] on the reference geometry, shown with the probability color
        table, named "<segment> probability[ day D]" and placed next to the segmentation."""
        return self.probabilityMapJob(segmentationNode, segmentId, beta, mu, day).run()

    def probabilityMapJob(self, segmentationNode: "slicer.vtkMRMLSegmentationNode", segmentId: str,
                          beta: float = defaults.BETA_PER_MM, mu: float = defaults.MU_MM,
                          day: Optional[float] = None) -> "Job":
        """:meth:`probabilityMap` as a :class:`Job`: the segment is exported now; ``build`` returns the volume."""
        mask, grid = adapters.segment_mask(segmentationNode, segmentId)
        name = f"{self._segment_name(segmentationNode, segmentId)} probability{conventions.day_label(day)}"

        def build(result: compute.ProbabilityResult) -> "slicer.vtkMRMLScalarVolumeNode":
            node = adapters.add_volume(self.scene, result.probability, result.grid, self.scene.GenerateUniqueName(name))
            conventions.show_as_probability(node)
            node.SetAttribute("GliomaForecast.Beta", repr(result.beta))
            node.SetAttribute("GliomaForecast.Mu", repr(result.mu))
            conventions.place_next_to(node, segmentationNode)
            return node

        return Job("Probability map", partial(compute.compute_probability, mask, grid, beta, mu), build)

    # --- growth ----------------------------------------------------------------------------------
    def segmentVolumeMl(self, segmentationNode: "slicer.vtkMRMLSegmentationNode", segmentId: str) -> float:
        """The volume (mL) of a segment, counted on its reference geometry."""
        mask, grid = adapters.segment_mask(segmentationNode, segmentId)
        return float(np.count_nonzero(mask)) * grid.voxel_volume_ml

    def fitGrowth(self, timepoints: Sequence[Tuple[float, "slicer.vtkMRMLSegmentationNode", str]],
                  rtStartDay: Optional[float] = None, nBootstrap: int = defaults.N_BOOTSTRAP,
                  noise: float = defaults.BOOTSTRAP_NOISE, seed: int = defaults.SEED,
                  untilDay: Optional[float] = None, progress: Optional[ProgressCallback] = None,
                  cancel: Optional[threading.Event] = None
                  ) -> Tuple["slicer.vtkMRMLTableNode", "slicer.vtkMRMLPlotChartNode"]:
        """Fit the mechanistic growth model (``gliomaforecast.growth.fit_growth``) to segment volumes (mL).

        ``timepoints`` are ``(day, segmentationNode, segmentId)``; days are in days, ``rtStartDay`` the RT start
        (None: no RT, exponential growth). ``nBootstrap`` refits with ``noise`` multiplicative Gaussian noise give
        the 95% band; ``seed`` makes it reproducible. The curve runs from the first day to ``untilDay`` (default:
        the last day plus half the observed span).

        Returns a table (Day, Median, Lower 2.5%, Upper 97.5%, Observed; mL) and a chart of it with the observed
        volumes as markers."""
        return self.fitGrowthJob(timepoints, rtStartDay, nBootstrap, noise, seed, untilDay).run(progress, cancel)

    def fitGrowthJob(self, timepoints: Sequence[Tuple[float, "slicer.vtkMRMLSegmentationNode", str]],
                     rtStartDay: Optional[float] = None, nBootstrap: int = defaults.N_BOOTSTRAP,
                     noise: float = defaults.BOOTSTRAP_NOISE, seed: int = defaults.SEED,
                     untilDay: Optional[float] = None) -> "Job":
        """:meth:`fitGrowth` as a :class:`Job`: the segment volumes (mL) are measured now; ``compute`` runs the
        bootstrap fit; ``build`` returns ``(table, chart)``."""
        points = sorted(((float(day), node, sid) for day, node, sid in timepoints), key=lambda p: p[0])
        if len(points) < 2:
            raise ValueError(f"growth fitting needs at least two timepoints, got {len(points)}")
        days = np.array([p[0] for p in points])
        burdens = np.array([self.segmentVolumeMl(node, sid) for _, node, sid in points])
        anchor = points[-1][1]

        def build(result: compute.GrowthResult) -> Tuple["slicer.vtkMRMLTableNode", "slicer.vtkMRMLPlotChartNode"]:
            return self._growthNodes(result.fit, result.curve, anchor)

        return Job("Fitting the growth model", partial(
            compute.compute_growth, days, burdens, rtStartDay, nBootstrap, noise, seed, untilDay), build)

    def _growthNodes(self, fit, curve: compute.GrowthCurve, anchor: "slicer.vtkMRMLNode"
                     ) -> Tuple["slicer.vtkMRMLTableNode", "slicer.vtkMRMLPlotChartNode"]:
        """Table and chart of a ``GrowthFit`` sampled as ``curve`` (mL), placed next to ``anchor``."""
        days = curve.observed_days
        span = f"days {days[0]:g}-{days[-1]:g}"
        table = self._table(f"Growth fit ({span})", {
            "Day": curve.days, "Median (mL)": curve.median, "Lower 2.5% (mL)": curve.lower,
            "Upper 97.5% (mL)": curve.upper, "Observed (mL)": curve.observed})
        observations = self._table(f"Growth observations ({span})",
                                   {"Day": days, "Observed (mL)": curve.observed_burdens})
        for key, value in (("Model", fit.model), ("RSquared", fit.r_squared), ("RtStartDay", fit.rt_start_day),
                           ("NBootstrap", fit.n_bootstrap), ("Noise", fit.noise), ("Seed", fit.seed)):
            table.SetAttribute(f"GliomaForecast.{key}", repr(value) if not isinstance(value, str) else value)
        for name, value in fit.params.as_dict().items():
            table.SetAttribute(f"GliomaForecast.{name}", repr(float(value)))
        chart = self.scene.AddNewNodeByClass("vtkMRMLPlotChartNode",
                                             self.scene.GenerateUniqueName(f"Growth curve ({span})"))
        chart.SetTitle("Tumor burden")
        chart.SetXAxisTitle("Day")
        chart.SetYAxisTitle("Volume (mL)")
        styles = (("Median (mL)", table, (0.85, 0.2, 0.2), "solid"),
                  ("Lower 2.5% (mL)", table, (0.55, 0.55, 0.55), "dash"),
                  ("Upper 97.5% (mL)", table, (0.55, 0.55, 0.55), "dash"),
                  ("Observed (mL)", observations, (0.1, 0.1, 0.1), "none"))
        for column, source, color, line in styles:
            series = self.scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", self.scene.GenerateUniqueName(
                f"{column.split(' (')[0]} ({span})"))
            series.SetAndObserveTableNodeID(source.GetID())
            series.SetXColumnName("Day")
            series.SetYColumnName(column)
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            series.SetColor(*color)
            if line == "none":
                series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleNone)
                series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
            else:
                series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
                series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleDash if line == "dash"
                                    else slicer.vtkMRMLPlotSeriesNode.LineStyleSolid)
            chart.AddAndObservePlotSeriesNodeID(series.GetID())
        for node in (table, observations, chart):
            conventions.place_next_to(node, anchor)
        return table, chart

    def _table(self, name: str, columns: dict) -> "slicer.vtkMRMLTableNode":
        """A new table node with float64 ``columns`` {title: values}, in order."""
        table = self.scene.AddNewNodeByClass("vtkMRMLTableNode", self.scene.GenerateUniqueName(name))
        for title, values in columns.items():
            array = vtk.vtkDoubleArray()
            array.SetName(title)
            for value in np.asarray(values, dtype=float):
                array.InsertNextValue(float(value))
            table.AddColumn(array)
        return table

    # --- target volumes --------------------------------------------------------------------------
    def targetVolumes(self, segmentationNode: "slicer.vtkMRMLSegmentationNode", segmentId: str,
                      scoreVolume: Optional["slicer.vtkMRMLScalarVolumeNode"] = None, marginMm: float = defaults.MARGIN_MM,
                      brainMask: Optional[MaskSource] = None, barrier: Optional[MaskSource] = None,
                      day: Optional[float] = None, progress: Optional[ProgressCallback] = None,
                      cancel: Optional[threading.Event] = None,
                      plan: str = standard_plan.AUTO) -> "slicer.vtkMRMLSegmentationNode":
        """A segmentation with segments "GTV", "CTV standard" and "CTV forecast" on the GTV's reference geometry,
        by the rule of ``gliomaforecast.targets.volumes``.

        * Seed: by the planning convention ``plan`` (``gliomaforecast.targets.standard_plan``): ``estro-eano``, the tumour
          core (the segmentation's "Necrosis" + "Enhancing tumor" segments) + "Resection cavity"; ``flair``, the GTV
          + "Resection cavity"; ``auto`` (default), estro-eano where the segmentation has a core or cavity segment,
          else flair, with the warning in the ``GliomaForecast.PlanWarning`` attribute (:func:`planWarning`).
          Estro-eano without such segments is a one-line ValueError naming the segmentation.
        * CTV standard: every voxel within ``marginMm`` mm of the seed, inside ``brainMask``, geodesic around
          ``barrier`` when given; holes filled.
        * CTV forecast: exactly as many voxels as CTV standard, ranked by ``scoreVolume`` (e.g. a forecast
          probability map; linearly resampled onto the GTV geometry when its grid differs). Without ``scoreVolume``
          the score is the seed's own probability map (default beta, mu): a distance ranking that redistributes the
          volume the brain mask cut off.

        ``brainMask`` and ``barrier`` are volume nodes (voxels > 0 are inside) or ``(segmentationNode, segmentId)``
        pairs. The output references the GTV's reference volume (needed for DICOM SEG / RTSTRUCT export) and records
        the convention in its ``GliomaForecast.Plan`` and ``GliomaForecast.PlanSeed`` attributes."""
        return self.targetVolumesJob(segmentationNode, segmentId, scoreVolume, marginMm, brainMask, barrier,
                                     day, plan=plan).run(progress, cancel)

    def targetVolumesJob(self, segmentationNode: "slicer.vtkMRMLSegmentationNode", segmentId: str,
                         scoreVolume: Optional["slicer.vtkMRMLScalarVolumeNode"] = None, marginMm: float = defaults.MARGIN_MM,
                         brainMask: Optional[MaskSource] = None, barrier: Optional[MaskSource] = None,
                         day: Optional[float] = None,
                         referenceVolume: Optional["slicer.vtkMRMLScalarVolumeNode"] = None,
                         plan: str = standard_plan.AUTO) -> "Job":
        """:meth:`targetVolumes` as a :class:`Job`: GTV, label segments, score, brain mask and barrier are read onto
        the GTV's grid now (``referenceVolume``, e.g. the FLAIR, when given: for a segmentation loaded without a
        reference volume; the output then references it for RTSTRUCT export); ``compute`` builds both CTVs by the
        convention ``plan``; ``build`` returns the segmentation."""
        gtv, grid = adapters.segment_mask(segmentationNode, segmentId, referenceVolume)
        labels = self.labelMap(segmentationNode, referenceVolume)
        brain = self._mask_on(brainMask, grid, "brain mask")
        wall = self._mask_on(barrier, grid, "barrier")
        score = None if scoreVolume is None else self._volume_on(scoreVolume, grid)
        name = f"{self._segment_name(segmentationNode, segmentId)} targets{conventions.day_label(day)}"

        def build(result: compute.TargetsResult) -> "slicer.vtkMRMLSegmentationNode":
            node = self._targetsNode(name, result, referenceVolume or segmentationNode)
            node.SetAttribute("GliomaForecast.Score", scoreVolume.GetName() if scoreVolume is not None else
                              f"{standard_plan.SEED_NAMES[result.plan]} probability (beta 0.1 /mm, mu 15 mm)")
            conventions.place_next_to(node, segmentationNode)
            return node

        return Job("Target volumes", partial(compute.compute_targets, gtv, grid, score, marginMm, brain, wall,
                                             labels=labels, plan=plan, source=self._planSource(segmentationNode)),
                   build)

    def _targetsNode(self, name: str, targets: compute.TargetsResult, like: "slicer.vtkMRMLNode"
                     ) -> "slicer.vtkMRMLSegmentationNode":
        """A segmentation of ``targets.masks`` {segment name: bool mask on ``targets.grid``} with colors and
        terminology, whose reference geometry is that of ``like`` (a volume, or a segmentation: its reference volume
        or geometry). Its attributes record the margin (``GliomaForecast.MarginMm``, mm), the planning convention
        (``GliomaForecast.Plan``), its seed (``GliomaForecast.PlanSeed``) and, when ``auto`` fell back to flair, why
        (``GliomaForecast.PlanWarning``)."""
        node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", self.scene.GenerateUniqueName(name))
        node.CreateDefaultDisplayNodes()
        reference = like if like.IsA("vtkMRMLScalarVolumeNode") else adapters.reference_volume(like)
        if reference is not None:
            node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
        else:
            parameter = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
            node.GetSegmentation().SetConversionParameter(
                parameter, like.GetSegmentation().GetConversionParameter(parameter))
        for segName, mask in targets.masks.items():
            adapters.add_segment_from_mask(node, mask, targets.grid, segName, conventions.SEGMENT_COLORS[segName],
                                           conventions.segment_terminology(segName))
        node.SetAttribute("GliomaForecast.MarginMm", repr(targets.margin_mm))
        node.SetAttribute(PLAN_ATTRIBUTE, targets.plan)
        node.SetAttribute(PLAN_SEED_ATTRIBUTE, standard_plan.SEED_NAMES[targets.plan])
        if targets.plan_warning:
            node.SetAttribute(PLAN_WARNING_ATTRIBUTE, targets.plan_warning)
        return node

    # --- end-to-end forecast ----------------------------------------------------------------------
    def forecast(self, timepoints: Sequence[Tuple[float, "slicer.vtkMRMLScalarVolumeNode",
                                                  "slicer.vtkMRMLSegmentationNode", str]],
                 day: float, rtStartDay: Optional[float] = None,
                 brainMask: Optional[MaskSource] = None, dose: Optional["slicer.vtkMRMLScalarVolumeNode"] = None,
                 forecaster: str = DEFAULT_FORECASTER, samples: int = defaults.SAMPLES, seed: int = defaults.SEED,
                 marginMm: float = defaults.MARGIN_MM, nBootstrap: int = defaults.N_BOOTSTRAP,
                 device: str = defaults.DEVICE, progress: Optional[ProgressCallback] = None,
                 cancel: Optional[threading.Event] = None, barrier: Optional[MaskSource] = None,
                 images: Optional[Mapping[float, Mapping[str, "slicer.vtkMRMLScalarVolumeNode"]]] = None,
                 settings: Optional[Mapping[str, Any]] = None, plan: str = standard_plan.AUTO) -> "ForecastNodes":
        """Forecast the tumor at ``day`` (days, after the last scan) with ``gliomaforecast.forecast.run_forecast``.

        ``timepoints`` are ``(day, flairVolume, segmentationNode, segmentId)``, as many as the forecaster needs (one
        for persistence, recurrence-unet and latent-diffusion, two or more for the others). Everything is taken on
        the last FLAIR's exact geometry (earlier FLAIRs are linearly resampled onto it when their grids differ;
        segments are exported on it); ``brainMask`` and ``barrier`` (volume or (segmentation, segment): the margin is
        geodesic around the barrier and both CTVs stay off it), ``dose`` (Gy) and ``rtStartDay`` (days) are
        optional. ``images``: the other sequences of each scan by day (``{day: {"t1ce": volume, ...}}``; the
        multi-task diffusion forecaster reads T1CE), resampled like the FLAIRs; None finds them in the scene
        (:meth:`scanImages`). ``forecaster``, ``samples``, ``seed``, ``marginMm``, ``nBootstrap``,
        ``device``, ``settings`` (the forecaster's own, e.g. ``{"outcome": "responder"}`` for latent-diffusion)
        and ``plan`` (the planning convention, as in :meth:`targetVolumes`; the last scan's label segments are its
        BraTS labels) are passed to the core unchanged.

        Returns :class:`ForecastNodes`: probability and uncertainty volumes (probability color table), predicted
        FLAIR (and further predicted sequences, e.g. T1CE, in ``images``), the tumor-evolution displacement as a
        grid transform, growth table and chart, and the target segmentation (GTV, CTV standard, CTV forecast)
        referencing the last FLAIR, with the convention in its attributes and its fallback warning, if any, in
        ``notes`` too."""
        return self.forecastJob(timepoints, day, rtStartDay, brainMask, dose, forecaster, samples, seed, marginMm,
                                nBootstrap, device, barrier=barrier, images=images,
                                settings=settings, plan=plan).run(progress, cancel)

    def forecastJob(self, timepoints: Sequence[Tuple[float, "slicer.vtkMRMLScalarVolumeNode",
                                                     "slicer.vtkMRMLSegmentationNode", str]],
                    day: float, rtStartDay: Optional[float] = None,
                    brainMask: Optional[MaskSource] = None, dose: Optional["slicer.vtkMRMLScalarVolumeNode"] = None,
                    forecaster: str = DEFAULT_FORECASTER, samples: int = defaults.SAMPLES, seed: int = defaults.SEED,
                    marginMm: float = defaults.MARGIN_MM, nBootstrap: int = defaults.N_BOOTSTRAP,
                    device: str = defaults.DEVICE, barrier: Optional[MaskSource] = None,
                    images: Optional[Mapping[float, Mapping[str, "slicer.vtkMRMLScalarVolumeNode"]]] = None,
                    settings: Optional[Mapping[str, Any]] = None, plan: str = standard_plan.AUTO) -> "Job":
        """:meth:`forecast` as a :class:`Job`: every FLAIR, GTV, the last scan's label map, the brain mask and the
        dose are read onto the last FLAIR's grid now (:class:`GliomaForecastLib.compute.ForecastInputs`); ``compute``
        runs the forecast; ``build`` returns :class:`ForecastNodes`."""
        points = sorted(((float(d), v, n, sid) for d, v, n, sid in timepoints), key=lambda p: p[0])
        if not points:
            raise ValueError("a forecast needs at least one timepoint")  # the core checks the forecaster's own minimum
        lastDay, lastFlair, lastSegmentation, _ = points[-1]
        grid = adapters.grid_from_volume(lastFlair)
        others = self.scanImages([p[0] for p in points]) if images is None else images
        inputs = compute.ForecastInputs(
            grid=grid, days=tuple(p[0] for p in points),
            flairs=tuple(self._volume_on(volume, grid) for _, volume, _, _ in points),
            images=tuple({m: self._volume_on(v, grid) for m, v in others.get(d, {}).items() if m != "flair"}
                         for d, _, _, _ in points),
            gtvs=tuple(adapters.segment_mask(segmentation, sid, lastFlair)[0] for _, _, segmentation, sid in points),
            patient_id=lastFlair.GetName(), day=float(day), forecaster=forecaster, rt_start_day=rtStartDay,
            brain=self._mask_on(brainMask, grid, "brain mask"), barrier=self._mask_on(barrier, grid, "barrier"),
            dose=None if dose is None else self._volume_on(dose, grid), samples=samples, seed=seed,
            margin_mm=marginMm, n_bootstrap=nBootstrap, device=device,
            forecaster_settings=tuple(sorted((settings or {}).items())),
            labels=self.labelMap(lastSegmentation, lastFlair), plan=plan)
        # A convention the last scan cannot serve fails here, naming its segmentation, before any work starts.
        compute.plan_seed(inputs.gtvs[-1], inputs.labels, plan, self._planSource(lastSegmentation))

        def build(result: compute.ForecastResult) -> ForecastNodes:
            output, label = result.output, conventions.day_label(day)
            nodes = ForecastNodes(day=float(day), notes=list(output.notes), timings=dict(result.timings))
            if result.targets.plan_warning:
                nodes.notes.append(result.targets.plan_warning)
            nodes.warnings = [w for w in (result.targets.plan_warning, result.input_shift_warning) if w]
            nodes.probability = adapters.add_volume(self.scene, output.probability, grid,
                                                    self.scene.GenerateUniqueName(f"Forecast probability{label}"))
            conventions.show_as_probability(nodes.probability)
            nodes.uncertainty = adapters.add_volume(self.scene, output.uncertainty, grid,
                                                    self.scene.GenerateUniqueName(f"Forecast uncertainty{label}"))
            conventions.show_as_probability(nodes.uncertainty, maximum=0.5)
            if output.image is not None:
                kind = "Predicted FLAIR" if output.image_kind == "synthesized" else "Warped last FLAIR"
                nodes.flair = adapters.add_volume(self.scene, np.asarray(output.image, dtype=np.float32), grid,
                                                  self.scene.GenerateUniqueName(f"{kind}{label}"))
            for modality, image in output.extra_images.items():
                nodes.images[modality] = adapters.add_volume(
                    self.scene, np.asarray(image, dtype=np.float32), grid,
                    self.scene.GenerateUniqueName(f"Predicted {modality.upper()}{label}"))
            for name, scenario in output.scenarios.items():
                entry = {"probability": adapters.add_volume(
                    self.scene, scenario.probability, grid,
                    self.scene.GenerateUniqueName(f"Forecast probability ({name}){label}"))}
                conventions.show_as_probability(entry["probability"])
                if scenario.image is not None:
                    entry["flair"] = adapters.add_volume(
                        self.scene, np.asarray(scenario.image, dtype=np.float32), grid,
                        self.scene.GenerateUniqueName(f"Predicted FLAIR ({name}){label}"))
                nodes.scenarios[name] = entry
            if result.displacement_lps is not None:
                nodes.displacement = adapters.add_grid_transform(
                    self.scene, result.displacement_lps, grid,
                    self.scene.GenerateUniqueName(f"Tumor evolution{conventions.day_label(lastDay)} to{label}"))
            nodes.table, nodes.chart = self._growthNodes(result.growth, result.curve, lastSegmentation)
            nodes.targets = self._targetsNode(f"Targets{label}", result.targets, lastFlair)
            nodes.targets.SetAttribute("GliomaForecast.Score", nodes.probability.GetName())
            scenario_nodes = [n for entry in nodes.scenarios.values() for n in entry.values()]
            for node in (nodes.probability, nodes.uncertainty, nodes.flair, *nodes.images.values(), *scenario_nodes,
                         nodes.displacement, nodes.targets):
                if node is not None:
                    node.SetAttribute("GliomaForecast.Forecaster", forecaster)
                    node.SetAttribute(DAY_ATTRIBUTE, repr(float(day)))
                    conventions.place_next_to(node, lastFlair)
            return nodes

        return Job("Forecasting", partial(compute.compute_forecast, inputs), build)

    # --- preparing the scans ----------------------------------------------------------------------
    def preparationTimepoints(self, scans: Sequence[tuple[float, slicer.vtkMRMLScalarVolumeNode,
                                                          slicer.vtkMRMLSegmentationNode, str]]) -> list:
        """The panel's scans ``(day, referenceVolume, segmentationNode, segmentId)`` as :meth:`prepare` takes them:
        ``(day, {modality: volume}, (segmentationNode, segmentId))``, the reference volume under its
        ``GliomaForecast.Modality`` attribute (FLAIR without one) and the scan's other sequences from the scene
        (:meth:`scanImages`)."""
        others = self.scanImages([float(day) for day, _, _, _ in scans])
        out = []
        for day, reference, segmentation, sid in scans:
            modality = reference.GetAttribute(MODALITY_ATTRIBUTE) or "flair"
            volumes = {m: v for m, v in others.get(float(day), {}).items() if m != modality}
            out.append((float(day), {modality: reference, **volumes}, (segmentation, sid)))
        return out

    def prepare(self, timepoints: Sequence[tuple[float, Mapping[str, slicer.vtkMRMLScalarVolumeNode], GtvSource]],
                brainMask: Optional[MaskSource] = None, dose: Optional[slicer.vtkMRMLScalarVolumeNode] = None,
                tissue: Optional[Mapping[str, slicer.vtkMRMLScalarVolumeNode]] = None, register: str = "rigid",
                template: str = "sri24", progress: Optional[ProgressCallback] = None,
                cancel: Optional[threading.Event] = None) -> PreparedNodes:
        """Bring every scan onto the planning scan (``gliomaforecast.preparation.prepare.prepare_sessions``): each
        later scan registered as a whole onto the first (``register``: rigid, affine, or none when they already
        share one frame), every image resampled onto the planning grid (linearly; GTVs and labels by nearest
        neighbour), and a brain mask and WM/GM/CSF maps derived from the planning scan (``template``: sri24 or
        mni152) where ``brainMask`` / ``tissue`` are not given.

        ``timepoints``: ``(day, {modality: volume}, gtv)`` (days; modality flair, t1ce, t1, t2, adc; ``gtv`` a
        segmentation (its "GTV" segment, its BraTS label segments carried along), a (segmentation, segment) pair or
        a labelmap volume), any order: sorted by day, the first is the planning scan, whose FLAIR (else first image)
        gives the grid. Every volume is read on its own grid. ``brainMask`` (volume or (segmentation, segment)),
        ``tissue`` ({"wm", "gm", "csf"}: probability volumes) and ``dose`` (Gy) lie in the planning scan's frame.

        Returns :class:`PreparedNodes` (new nodes; the inputs are never modified). A scan that will not register is
        refused with an InputError naming its volume and stating the measured quality; a poor but accepted one is a
        line of ``warnings``."""
        return self.prepareJob(timepoints, brainMask, dose, tissue, register, template).run(progress, cancel)

    def prepareJob(self, timepoints: Sequence[tuple[float, Mapping[str, slicer.vtkMRMLScalarVolumeNode],
                                                    GtvSource]],
                   brainMask: Optional[MaskSource] = None, dose: Optional[slicer.vtkMRMLScalarVolumeNode] = None,
                   tissue: Optional[Mapping[str, slicer.vtkMRMLScalarVolumeNode]] = None, register: str = "rigid",
                   template: str = "sri24") -> Job:
        """:meth:`prepare` as a :class:`Job`: every volume, GTV and label map is read now, each on its own grid
        (:class:`GliomaForecastLib.compute.PrepareInputs`); ``compute`` registers, resamples and derives;
        ``build`` returns :class:`PreparedNodes`."""
        points = sorted(((float(day), dict(images), gtv) for day, images, gtv in timepoints), key=lambda p: p[0])
        if not points:
            raise ValueError("Prepare needs at least one scan")
        days = [p[0] for p in points]
        if len(set(days)) != len(days):
            raise ValueError(f"two scans share a day: {', '.join(f'{d:g}' for d in days)}")
        volumes, names, sources, segments = [], [], [], []
        for number, (day, images, gtv) in enumerate(points, start=1):
            label = conventions.day_label(day)
            if not images:
                raise ValueError(f"the scan{label} has no image")
            unknown = sorted(set(images) - set(IMAGE_NAMES))
            if unknown:
                raise ValueError(f"the scan{label}: unknown sequence {', '.join(unknown)} (one of "
                                 f"{', '.join(IMAGE_NAMES)})")
            own: dict = {}
            named = {"scan": f"scan {number}"}
            for modality in (m for m in IMAGE_NAMES if m in images):
                node = images[modality]
                array, grid = adapters.volume_to_array_and_grid(node)
                own[modality] = (array.astype(np.float32, copy=False), grid, False)
                named[modality] = node.GetName()
            segment = self._gtvSource(gtv)
            if segment is not None:
                mask, grid, labels, name, _ = segment
                own["gtv"] = (mask.astype(np.uint8), grid, True)
                named["gtv"] = name
                if labels is not None:
                    own["labels"] = (labels, grid, True)
                    named["labels"] = name
            volumes.append(own)
            names.append(named)
            sources.append(images)
            segments.append(segment)
        planning = sources[0]
        planningNode = planning[next(m for m in IMAGE_NAMES if m in planning)]  # its FLAIR, else its first image
        grid = adapters.grid_from_volume(planningNode)
        tissueNodes = dict(tissue or {})
        unknown = sorted(set(tissueNodes) - set(TISSUE_NAMES))
        if unknown:
            raise ValueError(f"unknown tissue map {', '.join(unknown)} (one of {', '.join(TISSUE_NAMES)})")
        inputs = compute.PrepareInputs(
            grid=grid, days=tuple(days), volumes=tuple(volumes), names=tuple(names),
            brain=self._mask_and_grid(brainMask, "brain mask"),
            tissue=tuple((k, self._float_and_grid(v)) for k, v in tissueNodes.items() if v is not None),
            dose=None if dose is None else self._float_and_grid(dose), register=register, template=template)

        def build(prepared) -> PreparedNodes:
            return self._preparedNodes(prepared, sources, segments, planningNode, brainMask, dose, tissueNodes)

        return Job("Preparing the scans", partial(compute.compute_prepare, inputs), build)

    def _gtvSource(self, gtv: Optional[GtvSource]) -> Optional[tuple]:
        """(mask (bool), its grid, BraTS label map (int16) or None, node name, segment name) of a scan's GTV, on its
        own geometry."""
        if gtv is None:
            return None
        if isinstance(gtv, (tuple, list)):
            segmentation, sid = gtv
        elif gtv.IsA("vtkMRMLSegmentationNode"):
            segmentation, sid = gtv, "GTV"
        elif gtv.IsA("vtkMRMLVolumeNode"):
            array, grid = adapters.volume_to_array_and_grid(gtv)
            return array > 0, grid, None, gtv.GetName(), "GTV"
        else:
            raise ValueError(f"{gtv.GetName()}: a GTV is a segmentation, a (segmentation, segment) pair or a volume")
        mask, grid = adapters.segment_mask(segmentation, sid)
        labels = self.labelMap(segmentation)
        return mask, grid, labels, segmentation.GetName(), self._segment_name(segmentation, sid)

    def _mask_and_grid(self, source: Optional[MaskSource], what: str) -> Optional[tuple[np.ndarray, Grid]]:
        """A mask (bool) on its own grid from a volume node (> 0 inside) or a (segmentation, segment) pair."""
        if source is None:
            return None
        if isinstance(source, (tuple, list)):
            return adapters.segment_mask(*source)
        if not source.IsA("vtkMRMLVolumeNode"):
            raise ValueError(f"{what} must be a volume node or a (segmentation node, segment) pair")
        array, grid = adapters.volume_to_array_and_grid(source)
        return array > 0, grid

    @staticmethod
    def _float_and_grid(volumeNode: slicer.vtkMRMLVolumeNode) -> tuple[np.ndarray, Grid]:
        array, grid = adapters.volume_to_array_and_grid(volumeNode)
        return array.astype(np.float32, copy=False), grid

    def _preparedNodes(self, prepared, sources: list, segments: list, planningNode: slicer.vtkMRMLVolumeNode,
                       brainMask: Optional[MaskSource], dose: Optional[slicer.vtkMRMLScalarVolumeNode],
                       tissueNodes: dict) -> PreparedNodes:
        """The MRML nodes of the core's ``Prepared`` (see :class:`PreparedNodes`), placed next to the planning
        image in the subject hierarchy."""
        scene, grid = self.scene, prepared.grid
        unique = self.scene.GenerateUniqueName
        days = [float(s.day) for s in prepared.sessions]
        out = PreparedNodes(days=days, registrations=list(prepared.registrations),
                            provenance=dict(prepared.provenance), warnings=list(prepared.warnings()),
                            gtvVolumesMl=[float(v) for v in prepared.gtv_volumes_ml()])
        made = []
        for session, images, segment in zip(prepared.sessions, sources, segments):
            day = float(session.day)
            out.images[day] = {}
            for modality in (m for m in IMAGE_NAMES if m in session.images):
                node = adapters.add_volume(scene, np.asarray(session.images[modality], dtype=np.float32), grid,
                                           unique(images[modality].GetName() + PREPARED_SUFFIX))
                node.SetAttribute(DAY_ATTRIBUTE, repr(day))
                node.SetAttribute(MODALITY_ATTRIBUTE, modality)
                out.images[day][modality] = node
                made.append(node)
            if segment is None or session.gtv is None:
                continue
            reference = out.images[day]["flair"] if "flair" in out.images[day] else next(iter(out.images[day].values()))
            segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", unique(segment[3] + PREPARED_SUFFIX))
            segmentation.CreateDefaultDisplayNodes()
            segmentation.SetReferenceImageGeometryParameterFromVolumeNode(reference)
            adapters.add_segment_from_mask(segmentation, session.gtv, grid, segment[4],
                                           conventions.SEGMENT_COLORS["GTV"], conventions.segment_terminology("GTV"))
            if session.labels is not None:
                self._addLabelSegments(segmentation, session.labels, grid)
            segmentation.SetAttribute(DAY_ATTRIBUTE, repr(day))
            out.gtv[day] = segmentation
            made.append(segmentation)
        byIndex = {s.index: float(s.day) for s in prepared.sessions}
        for registration in prepared.registrations:
            day = byIndex[registration.timepoint]
            node = adapters.add_linear_transform(scene, registration.transform,
                                                 unique(f"Scan{conventions.day_label(day)} to planning"))
            node.SetAttribute(DAY_ATTRIBUTE, repr(day))
            node.SetAttribute(REGISTRATION_QUALITY_ATTRIBUTE, repr(float(registration.quality)))
            node.SetAttribute("GliomaForecast.RegistrationSource", registration.source)
            node.SetAttribute("GliomaForecast.RegistrationKind", registration.kind)
            node.SetAttribute("GliomaForecast.RegistrationImages", f"{registration.moving} onto {registration.fixed}")
            out.transforms[day] = node
            made.append(node)
        derivedBrain = prepared.provenance.get("brain_mask", {}).get("source") == "derived"
        brainName = "Brain mask (derived)" if derivedBrain else (
            (brainMask[0] if isinstance(brainMask, (tuple, list)) else brainMask).GetName() + PREPARED_SUFFIX)
        out.brainMask = adapters.add_volume(scene, np.asarray(prepared.brain, dtype=np.uint8), grid, unique(brainName),
                                            "vtkMRMLLabelMapVolumeNode")
        made.append(out.brainMask)
        derivedTissue = set(prepared.provenance.get("tissue", {}).get("derived", []))
        for name in TISSUE_NAMES:
            if name not in prepared.tissue:
                continue
            given = tissueNodes.get(name)
            title = (given.GetName() + PREPARED_SUFFIX) if given is not None and name not in derivedTissue \
                else f"{name.upper()} (derived)"
            out.tissue[name] = adapters.add_volume(scene, np.asarray(prepared.tissue[name], dtype=np.float32), grid,
                                                   unique(title))
            made.append(out.tissue[name])
        if prepared.dose is not None and dose is not None:
            out.dose = adapters.add_volume(scene, np.asarray(prepared.dose, dtype=np.float32), grid,
                                           unique(dose.GetName() + PREPARED_SUFFIX))
            made.append(out.dose)
        for node in made:
            conventions.place_next_to(node, planningNode)
        return out

    def scanImages(self, days: Sequence[float]) -> dict:
        """``{day: {modality: volume}}``: the scene's scalar volumes whose ``GliomaForecast.Day`` attribute is one of
        ``days`` (days) and whose ``GliomaForecast.Modality`` attribute names a sequence other than FLAIR (as
        :meth:`loadCase` sets them); the last added wins when a day has two of one sequence."""
        wanted = {float(d) for d in days}
        found: dict = {}
        for node in self.scene.GetNodesByClass("vtkMRMLScalarVolumeNode"):
            modality, day = node.GetAttribute(MODALITY_ATTRIBUTE), node.GetAttribute(DAY_ATTRIBUTE)
            if modality and modality != "flair" and day and float(day) in wanted:
                found.setdefault(float(day), {})[modality] = node
        return found

    # --- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _segment_name(segmentationNode: "slicer.vtkMRMLSegmentationNode", segmentId: str) -> str:
        sid = adapters.segment_id(segmentationNode, segmentId)
        return segmentationNode.GetSegmentation().GetSegment(sid).GetName()

    @staticmethod
    def _planSource(segmentationNode: "slicer.vtkMRMLSegmentationNode") -> str:
        """How a planning convention's error names the planning scan: its segmentation and where its labels come
        from."""
        return (f"segmentation {segmentationNode.GetName()!r} (BraTS labels: its "
                f"{', '.join(conventions.LABEL_SEGMENTS.values())} segments)")

    @staticmethod
    def _volume_on(volumeNode: "slicer.vtkMRMLVolumeNode", grid: Grid) -> np.ndarray:
        """A volume's voxels on ``grid`` (as they are when the grids match, else linearly resampled), float32."""
        array, own = adapters.volume_to_array_and_grid(volumeNode)
        if own.same_as(grid):
            return array.astype(np.float32, copy=False)
        return resample_to(array, own, grid)

    def _mask_on(self, source: Optional[MaskSource], grid: Grid, what: str) -> Optional[np.ndarray]:
        """A mask (bool, on ``grid``) from a volume node (> 0 inside) or a (segmentationNode, segmentId) pair."""
        if source is None:
            return None
        if isinstance(source, (tuple, list)):
            segmentationNode, sid = source
            reference = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "__GliomaForecast_reference__")
            adapters.update_volume_from_array(reference, np.zeros(grid.shape, np.uint8), grid)
            try:
                mask, _ = adapters.segment_mask(segmentationNode, sid, reference)
            finally:
                self.scene.RemoveNode(reference)
            return mask
        if not source.IsA("vtkMRMLVolumeNode"):
            raise ValueError(f"{what} must be a volume node or a (segmentation node, segment) pair")
        array, own = adapters.volume_to_array_and_grid(source)
        if not own.same_as(grid):
            array = resample_to(array, own, grid, label=True)
        return array > 0
