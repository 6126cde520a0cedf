"""ForecastLogic: the module's console methods on MRML nodes (no Qt), built on the core ``gliomaforecast``.

Every method reads its inputs through :mod:`GliomaForecastLib.adapters` on the input's exact geometry, calls one
core function, and returns new MRML nodes on that geometry (inputs are never modified). Units: mm, days, mL.

Example (Slicer's Python console)::

    from GliomaForecastLib.logic import ForecastLogic
    logic = ForecastLogic()
    prob = logic.probabilityMap(getNode("GTV day 95"), "GTV")
    table, chart = logic.fitGrowth([(0, seg0, "GTV"), (95, seg1, "GTV")], rtStartDay=21)
    targets = logic.targetVolumes(seg1, "GTV", scoreVolume=prob, marginMm=15.0)
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import slicer
import vtk

from gliomaforecast import ctv, sdf
from gliomaforecast.case import load_case
from gliomaforecast.deformation import to_physical
from gliomaforecast.forecast import DEFAULT_FORECASTER, run_forecast
from gliomaforecast.io import write_image
from gliomaforecast.geometry import Grid, resample_to

from . import adapters, conventions
from .progress import ProgressCallback, Steps

DAY_ATTRIBUTE = "GliomaForecast.Day"
_DAY_IN_NAME = re.compile(r"(?:\bday[\s_]*|(?<![A-Za-z0-9])d)(\d+(?:\.\d+)?)(?![\d.])", re.IGNORECASE)

MaskSource = Union["slicer.vtkMRMLVolumeNode", Tuple["slicer.vtkMRMLSegmentationNode", str]]


def timepointDay(node: "slicer.vtkMRMLNode") -> Optional[float]:
    """The scan day (days) of a node: its ``GliomaForecast.Day`` attribute, else a day in its name ("GTV day 95",
    "d095_gtv"), else None."""
    value = node.GetAttribute(DAY_ATTRIBUTE)
    if value:
        return float(value)
    match = _DAY_IN_NAME.search(node.GetName() or "")
    return float(match.group(1)) if match else None


@dataclass
class LoadedCase:
    """The MRML nodes of a case loaded by :meth:`ForecastLogic.loadCase` (days in days)."""

    patientId: str
    days: list
    rtStartDay: Optional[float]
    flair: dict = field(default_factory=dict)  # day -> vtkMRMLScalarVolumeNode
    gtv: dict = field(default_factory=dict)  # day -> vtkMRMLSegmentationNode with one segment "GTV"
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
    displacement: Optional["slicer.vtkMRMLGridTransformNode"] = None
    table: Optional["slicer.vtkMRMLTableNode"] = None
    chart: Optional["slicer.vtkMRMLPlotChartNode"] = None
    targets: Optional["slicer.vtkMRMLSegmentationNode"] = None
    notes: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)


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
        """Load a case manifest (``case.json``, see ``gliomaforecast.case``) as MRML nodes on its exact geometry:
        "FLAIR day D" volumes, "GTV day D" segmentations (one segment "GTV", referencing that day's FLAIR),
        "Brain mask" labelmap and "RT dose (Gy)" volume, each with its ``GliomaForecast.Day`` attribute, under a
        subject-hierarchy patient and study named after the case."""
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
            flair = None
            if "flair" in tp.images:
                flair = adapters.add_volume(scene, case.image(tp, "flair"), grid, f"FLAIR{label}")
                flair.SetAttribute(DAY_ATTRIBUTE, repr(day))
                _place(flair)
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

    # --- probability map ----------------------------------------------------------------------------
    def probabilityMap(self, segmentationNode: "slicer.vtkMRMLSegmentationNode", segmentId: str,
                       beta: float = sdf.DEFAULT_BETA, mu: float = sdf.DEFAULT_MU,
                       day: Optional[float] = None) -> "slicer.vtkMRMLScalarVolumeNode":
        """Tumor-presence probability P = 1 / (1 + exp(beta (phi - mu))) of a segment (``segmentId``: ID or name),
        ``phi`` its signed distance in mm on the segmentation's reference geometry, ``beta`` in 1/mm, ``mu`` in mm.

        Returns a float32 scalar volume in [0, 1] on the reference geometry, shown with the probability color
        table, named "<segment> probability[ day D]" and placed next to the segmentation."""
        mask, grid = adapters.segment_mask(segmentationNode, segmentId)
        probability = sdf.tumor_probability(mask, grid.spacing, beta=beta, mu=mu)
        name = f"{self._segment_name(segmentationNode, segmentId)} probability{conventions.day_label(day)}"
        node = adapters.add_volume(self.scene, probability, grid, self.scene.GenerateUniqueName(name))
        conventions.show_as_probability(node)
        node.SetAttribute("GliomaForecast.Beta", repr(float(beta)))
        node.SetAttribute("GliomaForecast.Mu", repr(float(mu)))
        conventions.place_next_to(node, segmentationNode)
        return node

    # --- growth ----------------------------------------------------------------------------------
    def segmentVolumeMl(self, segmentationNode: "slicer.vtkMRMLSegmentationNode", segmentId: str) -> float:
        """The volume (mL) of a segment, counted on its reference geometry."""
        mask, grid = adapters.segment_mask(segmentationNode, segmentId)
        return float(np.count_nonzero(mask)) * grid.voxel_volume_ml

    def fitGrowth(self, timepoints: Sequence[Tuple[float, "slicer.vtkMRMLSegmentationNode", str]],
                  rtStartDay: Optional[float] = None, nBootstrap: int = 100, noise: float = 0.10, seed: int = 0,
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
        from gliomaforecast.growth import fit_growth

        steps = Steps(progress, cancel)
        points = sorted(((float(day), node, sid) for day, node, sid in timepoints), key=lambda p: p[0])
        if len(points) < 2:
            raise ValueError(f"growth fitting needs at least two timepoints, got {len(points)}")
        days = np.array([p[0] for p in points])
        burdens = []
        for i, (day, node, sid) in enumerate(points):
            steps.step(0.3 * i / len(points), f"Measuring the volume on day {day:g}")
            burdens.append(self.segmentVolumeMl(node, sid))
        burdens = np.array(burdens)
        steps.step(0.3, f"Fitting the growth model ({nBootstrap} bootstrap refits)")
        fit = fit_growth(days, burdens, rt_start_day=rtStartDay, n_bootstrap=nBootstrap, noise=noise, seed=seed)
        steps.step(0.9, "Building the growth table and chart")
        table, chart = self._growthNodes(fit, untilDay, points[-1][1])
        steps.done()
        return table, chart

    def _growthNodes(self, fit, untilDay: Optional[float], anchor: "slicer.vtkMRMLNode"
                     ) -> Tuple["slicer.vtkMRMLTableNode", "slicer.vtkMRMLPlotChartNode"]:
        """Table and chart of a ``GrowthFit``: the median curve and 95% band from its first day to ``untilDay``
        (default: the last day plus half the observed span), and the observed burdens (mL)."""
        days, burdens = np.asarray(fit.days, dtype=float), np.asarray(fit.burdens, dtype=float)
        end = float(untilDay) if untilDay is not None else days[-1] + 0.5 * (days[-1] - days[0])
        curveDays = np.union1d(np.linspace(days[0], max(end, days[-1]), 201), days)
        median, lower, upper = (np.asarray(a, dtype=float) for a in fit.predict(curveDays))
        observed = np.full(curveDays.shape, np.nan)
        observed[np.searchsorted(curveDays, days)] = burdens
        span = f"days {days[0]:g}-{days[-1]:g}"
        table = self._table(f"Growth fit ({span})", {
            "Day": curveDays, "Median (mL)": median, "Lower 2.5% (mL)": lower, "Upper 97.5% (mL)": upper,
            "Observed (mL)": observed})
        observations = self._table(f"Growth observations ({span})", {"Day": days, "Observed (mL)": burdens})
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
                      scoreVolume: Optional["slicer.vtkMRMLScalarVolumeNode"] = None, marginMm: float = 15.0,
                      brainMask: Optional[MaskSource] = None, barrier: Optional[MaskSource] = None,
                      day: Optional[float] = None, progress: Optional[ProgressCallback] = None,
                      cancel: Optional[threading.Event] = None) -> "slicer.vtkMRMLSegmentationNode":
        """A segmentation with segments "GTV", "CTV standard" and "CTV forecast" on the GTV's reference geometry.

        * CTV standard: ``gliomaforecast.ctv.standard_ctv`` (every voxel within ``marginMm`` mm of the GTV, inside
          ``brainMask``, geodesic around ``barrier`` when given).
        * CTV forecast: ``gliomaforecast.ctv.isovolumetric_ctv`` with exactly as many voxels as CTV standard,
          ranked by ``scoreVolume`` (e.g. a forecast probability map; linearly resampled onto the GTV geometry
          when its grid differs). Without ``scoreVolume`` the score is the GTV's own probability map
          (default beta, mu): a distance ranking that redistributes the volume the brain mask cut off.

        ``brainMask`` and ``barrier`` are volume nodes (voxels > 0 are inside) or ``(segmentationNode, segmentId)``
        pairs. The output references the GTV's reference volume (needed for DICOM SEG / RTSTRUCT export)."""
        steps = Steps(progress, cancel)
        steps.step(0.0, "Reading the GTV")
        gtv, grid = adapters.segment_mask(segmentationNode, segmentId)
        brain = self._mask_on(brainMask, grid, "brain mask")
        wall = self._mask_on(barrier, grid, "barrier")
        steps.step(0.2, "Standard margin CTV")
        standard = ctv.standard_ctv(gtv, grid.spacing, margin_mm=marginMm, brain_mask=brain, barrier=wall)
        steps.step(0.6, "Iso-volumetric forecast CTV")
        if scoreVolume is None:
            score = sdf.tumor_probability(gtv, grid.spacing)
        else:
            score = self._volume_on(scoreVolume, grid)
        forecast = ctv.isovolumetric_ctv(score, int(np.count_nonzero(standard)), grid.spacing, gtv=gtv,
                                         brain_mask=brain)
        steps.step(0.9, "Building the segmentation")
        name = f"{self._segment_name(segmentationNode, segmentId)} targets{conventions.day_label(day)}"
        node = self._targetsNode(name, grid, {"GTV": gtv, "CTV standard": standard, "CTV forecast": forecast},
                                 segmentationNode)
        node.SetAttribute("GliomaForecast.MarginMm", repr(float(marginMm)))
        node.SetAttribute("GliomaForecast.Score", scoreVolume.GetName() if scoreVolume is not None
                          else "GTV probability (beta 0.1 /mm, mu 15 mm)")
        conventions.place_next_to(node, segmentationNode)
        steps.done()
        return node

    def _targetsNode(self, name: str, grid: Grid, masks: dict, like: "slicer.vtkMRMLNode"
                     ) -> "slicer.vtkMRMLSegmentationNode":
        """A segmentation of ``masks`` {segment name: bool mask on ``grid``} with colors and terminology, whose
        reference geometry is that of ``like`` (a volume, or a segmentation: its reference volume or geometry)."""
        node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", self.scene.GenerateUniqueName(name))
        node.CreateDefaultDisplayNodes()
        reference = like if like.IsA("vtkMRMLScalarVolumeNode") else adapters.reference_volume(like)
        if reference is not None:
            node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
        else:
            parameter = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
            node.GetSegmentation().SetConversionParameter(
                parameter, like.GetSegmentation().GetConversionParameter(parameter))
        for segName, mask in masks.items():
            adapters.add_segment_from_mask(node, mask, grid, segName, conventions.SEGMENT_COLORS[segName],
                                           conventions.segment_terminology(segName))
        return node

    # --- end-to-end forecast ----------------------------------------------------------------------
    def forecast(self, timepoints: Sequence[Tuple[float, "slicer.vtkMRMLScalarVolumeNode",
                                                  "slicer.vtkMRMLSegmentationNode", str]],
                 day: float, rtStartDay: Optional[float] = None,
                 brainMask: Optional[MaskSource] = None, dose: Optional["slicer.vtkMRMLScalarVolumeNode"] = None,
                 forecaster: str = DEFAULT_FORECASTER, samples: int = 8, seed: int = 0, marginMm: float = 15.0,
                 nBootstrap: int = 100, device: str = "auto", progress: Optional[ProgressCallback] = None,
                 cancel: Optional[threading.Event] = None) -> "ForecastNodes":
        """Forecast the tumor at ``day`` (days, after the last scan) with ``gliomaforecast.forecast.run_forecast``.

        ``timepoints`` are ``(day, flairVolume, segmentationNode, segmentId)``, two or more. Everything is taken on
        the last FLAIR's exact geometry (earlier FLAIRs are linearly resampled onto it when their grids differ;
        segments are exported on it); ``brainMask`` (volume or (segmentation, segment)), ``dose`` (Gy) and
        ``rtStartDay`` (days) are optional. ``forecaster``, ``samples``, ``seed``, ``marginMm``, ``nBootstrap`` and
        ``device`` are passed to the core unchanged.

        Returns :class:`ForecastNodes`: probability and uncertainty volumes (probability color table), predicted
        FLAIR, the tumor-evolution displacement as a grid transform, growth table and chart, and the target
        segmentation (GTV, CTV standard, CTV forecast) referencing the last FLAIR."""
        steps = Steps(progress, cancel)
        points = sorted(((float(d), v, n, sid) for d, v, n, sid in timepoints), key=lambda p: p[0])
        if len(points) < 2:
            raise ValueError(f"a forecast needs at least two timepoints, got {len(points)}")
        lastDay, lastFlair, lastSegmentation, lastSegment = points[-1]
        grid = adapters.grid_from_volume(lastFlair)
        steps.step(0.0, "Preparing the case")
        with tempfile.TemporaryDirectory(prefix="gliomaforecast_") as folder:
            folder = Path(folder)
            entries = []
            for i, (d, volume, segmentation, sid) in enumerate(points):
                write_image(folder / f"t{i}_flair.nrrd", self._volume_on(volume, grid), grid)
                mask, _ = adapters.segment_mask(segmentation, sid, lastFlair)
                write_image(folder / f"t{i}_gtv.nrrd", mask.astype(np.uint8), grid)
                entries.append({"day": d, "images": {"flair": f"t{i}_flair.nrrd"}, "gtv": f"t{i}_gtv.nrrd"})
            manifest = {"schema": "gliomaforecast.case/1", "patient_id": lastFlair.GetName(),
                        "rt_start_day": rtStartDay, "timepoints": entries}
            if brainMask is not None:
                write_image(folder / "brain.nrrd", self._mask_on(brainMask, grid, "brain mask").astype(np.uint8), grid)
                manifest["brain_mask"] = "brain.nrrd"
            if dose is not None:
                write_image(folder / "dose.nrrd", self._volume_on(dose, grid), grid)
                manifest["dose"] = "dose.nrrd"
            if rtStartDay is None:
                del manifest["rt_start_day"]
            (folder / "case.json").write_text(json.dumps(manifest))
            messages = []

            def onMessage(message: str) -> None:
                messages.append(message)
                steps.step(min(0.1 * len(messages), 0.85), message)

            result = run_forecast(folder / "case.json", float(day), forecaster, samples=samples, seed=seed,
                                  device=device, margin_mm=marginMm, n_bootstrap=nBootstrap, progress=onMessage)
            output = result.output
            steps.step(0.9, "Building the output nodes")
            label = conventions.day_label(day)
            nodes = ForecastNodes(day=float(day), notes=list(output.notes), timings=dict(result.timings))
            nodes.probability = adapters.add_volume(self.scene, output.probability, grid,
                                                    self.scene.GenerateUniqueName(f"Forecast probability{label}"))
            conventions.show_as_probability(nodes.probability)
            nodes.uncertainty = adapters.add_volume(self.scene, output.uncertainty, grid,
                                                    self.scene.GenerateUniqueName(f"Forecast uncertainty{label}"))
            conventions.show_as_probability(nodes.uncertainty, maximum=0.5)
            if output.image is not None:
                nodes.flair = adapters.add_volume(self.scene, np.asarray(output.image, dtype=np.float32), grid,
                                                  self.scene.GenerateUniqueName(f"Predicted FLAIR{label}"))
            nodes.displacement = adapters.add_grid_transform(
                self.scene, to_physical(output.displacement, grid), grid,
                self.scene.GenerateUniqueName(f"Tumor evolution{conventions.day_label(lastDay)} to{label}"))
            nodes.table, nodes.chart = self._growthNodes(result.growth, float(day), lastSegmentation)
            nodes.targets = self._targetsNode(f"Targets{label}", grid, {
                "GTV": result.gtv, "CTV standard": result.ctv_standard, "CTV forecast": result.ctv_forecast},
                lastFlair)
            nodes.targets.SetAttribute("GliomaForecast.MarginMm", repr(float(marginMm)))
            nodes.targets.SetAttribute("GliomaForecast.Score", nodes.probability.GetName())
            for node in (nodes.probability, nodes.uncertainty, nodes.flair, nodes.displacement, nodes.targets):
                if node is not None:
                    node.SetAttribute("GliomaForecast.Forecaster", forecaster)
                    node.SetAttribute(DAY_ATTRIBUTE, repr(float(day)))
                    conventions.place_next_to(node, lastFlair)
        steps.done()
        return nodes

    # --- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _segment_name(segmentationNode: "slicer.vtkMRMLSegmentationNode", segmentId: str) -> str:
        sid = adapters.segment_id(segmentationNode, segmentId)
        return segmentationNode.GetSegmentation().GetSegment(sid).GetName()

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
