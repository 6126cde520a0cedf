"""Glioma Forecast: 3D Slicer module (module, parameter node, thin widget, Slicer logic, self-test).

All numerics live in the core package ``gliomaforecast``; all MRML conversions in ``GliomaForecastLib`` (which runs
headless too). This file only adds what needs the Slicer application: the Qt panel, dependency installation,
the Sample Data registration and the self-test.
"""

# No "from __future__ import annotations" here: parameterNodeWrapper reads the class annotations as types.
import importlib.util
import logging
import os
from typing import Annotated, Optional

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

# Plain Python and numpy (the defaults, the planning conventions and the forecaster registry): importable before the
# core's dependencies are installed.
from gliomaforecast import defaults
from gliomaforecast.targets import standard_plan
from gliomaforecast.forecasters import DEFAULT_FORECASTER, FORECASTER_NAMES
from gliomaforecast.forecasters.registry import (OUTCOME, distinct_settings as forecasterSettings,
                                                 entry as forecasterEntry, setting_help as settingHelp)
from GliomaForecastLib.panel import (REGISTER_CHOICES, REGISTER_DEFAULT, TEMPLATE_CHOICES, TEMPLATE_DEFAULT,
                                     defaultForecastDay, doseTooltip, panelMessage, preparationSummary,
                                     settingComboBox)

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))


def resourceFile(*parts: str) -> str:
    """A resource under the built module's Resources/ or, in the source tree, under the extension's Resources/."""
    for base in (os.path.join(MODULE_DIR, "Resources"), os.path.join(MODULE_DIR, os.pardir, "Resources")):
        path = os.path.normpath(os.path.join(base, *parts))
        if os.path.exists(path):
            return path
    return os.path.join(MODULE_DIR, "Resources", *parts)


REQUIREMENTS = resourceFile("requirements.txt")
SAMPLE_CASE = resourceFile("SampleData", "sample_patient", "case.json")
ICON = resourceFile("Icons", "GliomaForecast.png")
# Import names of the requirements (pip names differ for some).
POLL_INTERVAL_MS = 100  # how often the panel polls a running background task
REQUIRED_IMPORTS = ("scipy", "nibabel", "nrrd", "skimage", "onnxruntime", "matplotlib", "tqdm", "skfmm")


def missingDependencies() -> list:
    """Import names of the core's third-party packages that are not installed in Slicer's Python."""
    return [name for name in REQUIRED_IMPORTS if importlib.util.find_spec(name) is None]


def ensureDependencies() -> None:
    """Install Resources/requirements.txt into Slicer's Python on first use, after asking the user."""
    missing = missingDependencies()
    if not missing:
        return
    if not slicer.util.confirmOkCancelDisplay(
            f"Glioma Forecast needs these Python packages: {', '.join(missing)}.\nInstall them now?",
            windowTitle="Glioma Forecast"):
        raise RuntimeError(f"missing Python packages: {', '.join(missing)}")
    with open(REQUIREMENTS) as f:
        requirements = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    packaging = getattr(slicer, "packaging", None)
    with slicer.util.WaitCursor():
        if packaging is not None and hasattr(packaging, "pip_ensure"):
            packaging.pip_ensure(requirements)
        else:
            slicer.util.pip_install(requirements)


#
# Module
#

class GliomaForecast(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Glioma Forecast"
        self.parent.categories = ["Radiotherapy"]
        self.parent.dependencies = []
        self.parent.contributors = ["GliomaForecast team"]
        self.parent.icon = qt.QIcon(ICON)
        self.parent.helpText = """
Forecasts how a glioma will grow from two or more MRI scans with GTV segmentations, and turns the forecast into
radiotherapy target volumes: a standard-margin CTV and an iso-volumetric, forecast-driven CTV of the same volume,
in one segmentation ready for the Segment Editor and RTSTRUCT / DICOM SEG export.
<ul>
<li><b>Inputs</b>: one GTV segmentation per scan (its reference volume is that scan's FLAIR; the day comes from
the node's <i>GliomaForecast.Day</i> attribute or its name, e.g. "GTV day 95"), optional brain mask, barrier and
RT dose (Gy).</li>
<li><b>Prepare</b>: scans from another session or scanner, each on its own grid: every later scan registered
(rigid or affine, quality measured) onto the first (the planning scan) and resampled onto its grid, a brain mask and
WM/GM/CSF maps derived from a template where none is given; the prepared scans become the inputs.</li>
<li><b>Growth</b>: mechanistic tumor-burden model with radiotherapy, fitted with bootstrap 95% bands (table + chart).</li>
<li><b>Forecast</b>: probability, uncertainty, the last FLAIR warped by the tumor-evolution displacement (not a forecast image) and the displacement at a future day;
probability map of the last GTV (signed distance in mm through a logistic).</li>
<li><b>Target volume</b>: GTV, CTV standard (margin in mm, geodesic around barriers) and CTV forecast, both grown
from the seed of the standard plan's convention: estro-eano (ESTRO-EANO 2023 / PREDICT-GBM: tumour core, i.e.
necrosis + enhancing tumor, + resection cavity, from the scan's label segments) or flair (whole GTV + resection
cavity); auto takes estro-eano where the last scan has label segments, else flair with a warning.</li>
</ul>
Methods:
<ul>
<li>A. Kebaili, R. Modzelewski, J. Lapuyade-Lahorgue, M. Fontanilles, S. Thureau, S. Ruan.
Multi-Task Diffusion Approach for Prediction of Glioma Tumor Progression (probabilistic GTV, tumor-evolution field).</li>
<li>D. Laslo, E. Georgiou, M. G. Linguraru, A. M. Rauschecker, S. Müller, C. R. Jutzeler, S. Brüningk.
Mechanistic Learning with Guided Diffusion Models to Predict Spatio-Temporal Brain Tumor Growth,
arXiv:2509.09610 (growth model with radiotherapy, bootstrap bands).</li>
<li>Latent diffusion prediction of glioblastoma treatment response from the pre-treatment scan,
doi:10.1007/978-3-032-05472-2_18.</li>
<li>L. Zimmer et al. PREDICT-GBM: a multi-center platform to advance personalized glioblastoma radiotherapy
planning (standard and iso-volumetric model-driven plans, recurrence coverage).</li>
</ul>
The same logic runs from the Python console: see docs/console.md.
"""
        self.parent.acknowledgementText = """
Built on 3D Slicer's MRML, Segmentations, Plots and Subject Hierarchy infrastructure, and on numpy, SciPy,
SimpleITK, scikit-image, lmfit, scikit-fmm and ONNX Runtime. The methods are those of the papers listed in the help;
the networks shipped here were trained by this project, not by the papers' authors.
"""
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData() -> None:
    """Register the sample patient with the Sample Data module: it loads through ForecastLogic.loadCase."""
    try:
        import SampleData
    except ImportError:
        return
    if not os.path.exists(SAMPLE_CASE):
        return

    def loadSamplePatient(source=None):
        ensureDependencies()
        loaded = GliomaForecastLogic().loadCase(SAMPLE_CASE)
        return [loaded.flair[day] for day in loaded.days] + [loaded.gtv[day] for day in loaded.days]

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="Glioma Forecast",
        sampleName="GliomaForecastSamplePatient",
        uris=[],
        fileNames=[],
        nodeNames=[],
        thumbnailFileName=ICON,
        customDownloader=loadSamplePatient,
    )


#
# Parameter node
#

@parameterNodeWrapper
class GliomaForecastParameterNode:
    """The panel's state. Days in days, distances in mm."""

    # Inputs
    timepointSegmentations: list[vtkMRMLSegmentationNode]
    gtvSegmentName: str = "GTV"
    brainMask: vtkMRMLScalarVolumeNode
    barrier: vtkMRMLScalarVolumeNode
    dose: vtkMRMLScalarVolumeNode
    referenceFlair: vtkMRMLScalarVolumeNode
    # Prepare: every later scan registered onto the first (the planning scan) and resampled onto its grid
    prepareRegistration: Annotated[str, Choice(list(REGISTER_CHOICES))] = REGISTER_DEFAULT
    prepareTemplate: Annotated[str, Choice(list(TEMPLATE_CHOICES))] = TEMPLATE_DEFAULT
    # Growth
    useRadiotherapy: bool = True
    rtStartDay: float = 21.0
    nBootstrap: Annotated[int, WithinRange(10, 1000)] = defaults.N_BOOTSTRAP
    # Forecast
    forecastDay: Annotated[float, WithinRange(0.0, 10000.0)] = 180.0
    forecaster: Annotated[str, Choice(list(FORECASTER_NAMES))] = DEFAULT_FORECASTER
    # One field per forecaster setting (registry.distinct_settings), its choices and default from the registry.
    outcome: Annotated[str, Choice(list(OUTCOME.choices))] = OUTCOME.default
    samples: Annotated[int, WithinRange(1, 64)] = defaults.SAMPLES
    seed: Annotated[int, WithinRange(0, 2147483647)] = defaults.SEED
    beta: Annotated[float, WithinRange(0.01, 1.0)] = defaults.BETA_PER_MM
    mu: Annotated[float, WithinRange(0.0, 50.0)] = defaults.MU_MM
    # Target volume
    marginMm: Annotated[float, WithinRange(0.0, 40.0)] = defaults.MARGIN_MM
    plan: Annotated[str, Choice(list(standard_plan.CHOICES))] = standard_plan.AUTO
    scoreVolume: vtkMRMLScalarVolumeNode


#
# Widget
#

class GliomaForecastWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """A thin panel: reads the parameter node, calls GliomaForecastLogic, shows progress; no numerics.

    Long work runs off the GUI thread: inputs are gathered from MRML here, the job's pure compute runs in a
    GliomaForecastLib.background.BackgroundTask, a QTimer polls it every POLL_INTERVAL_MS for the progress bar and
    status, Cancel sets its event, and the output nodes are built here when it is done."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: Optional[GliomaForecastLogic] = None
        self._parameterNode: Optional[GliomaForecastParameterNode] = None
        self._parameterNodeGuiTag = None
        self._task = None  # the running GliomaForecastLib.background.BackgroundTask
        self._job = None  # its GliomaForecastLib.logic.Job (built on the main thread when the task is done)
        self._show = None  # what to do with the built nodes
        self._title = ""
        self._timer = None
        self._scanKey = None  # the selected scans whose default forecast day was last set

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(resourceFile("UI", "GliomaForecast.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = GliomaForecastLogic()

        self.ui.progressBar.setVisible(False)
        self.ui.doseSelector.toolTip = doseTooltip()
        for setting in forecasterSettings():
            getattr(self.ui, settingComboBox(setting.name)).toolTip = settingHelp(setting)
        self.ui.loadSampleButton.setEnabled(os.path.exists(SAMPLE_CASE))
        self.ui.loadSampleButton.connect("clicked(bool)", self.onLoadSample)
        self.ui.prepareButton.connect("clicked(bool)", self.onPrepare)
        self.ui.fitGrowthButton.connect("clicked(bool)", self.onFitGrowth)
        self.ui.forecastButton.connect("clicked(bool)", self.onForecast)
        self.ui.probabilityButton.connect("clicked(bool)", self.onProbability)
        self.ui.targetsButton.connect("clicked(bool)", self.onTargets)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self._poll)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()
        if self._task is not None:
            self._task.request_cancel()  # the worker stops at its next step; nothing is built
        if self._timer is not None:
            self._timer.stop()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.onCancel()  # the inputs are going away: whatever is running is discarded
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode: Optional[GliomaForecastParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self._updateButtons()

    def _updateButtons(self, caller=None, event=None) -> None:
        p = self._parameterNode
        scans = len(p.timepointSegmentations) if p else 0
        self._proposeForecastDay()
        idle = self._task is None
        self.ui.rtStartDaySpinBox.setEnabled(bool(p and p.useRadiotherapy))
        self.ui.fitGrowthButton.setEnabled(idle and scans >= 2)
        forecaster = forecasterEntry(p.forecaster) if p else None
        self.ui.forecastButton.setEnabled(idle and forecaster is not None and scans >= forecaster.min_scans)
        for setting in forecasterSettings():  # enabled for the forecasters that take it
            taken = forecaster is not None and setting.name in forecaster.setting_names
            getattr(self.ui, settingComboBox(setting.name)).setEnabled(taken)
        self.ui.probabilityButton.setEnabled(idle and scans >= 1)
        self.ui.targetsButton.setEnabled(idle and scans >= 1)
        self.ui.loadSampleButton.setEnabled(idle and os.path.exists(SAMPLE_CASE))
        self.ui.prepareButton.setEnabled(idle and scans >= 1)
        self.ui.cancelButton.setEnabled(not idle)

    def _proposeForecastDay(self) -> None:
        """When the selected scans change, set the forecast day to the logic's default (last scan + 90 days)."""
        p = self._parameterNode
        key = tuple(node.GetID() for node in p.timepointSegmentations) if p else None
        if p is None or key == self._scanKey:
            return
        first, self._scanKey = self._scanKey is None, key
        if first:  # the panel opening on scans already chosen (e.g. a saved scene) keeps its forecast day
            return
        day = self.logic.defaultForecastDay(p.timepointSegmentations)
        if day is not None and day != p.forecastDay:
            p.forecastDay = day

    # --- long work off the GUI thread, with progress and Cancel --------------------------------------
    def _start(self, title: str, prepare) -> None:
        """Run a job off the GUI thread. ``prepare()`` runs here on the main thread: it reads the parameter node
        and gathers the inputs from MRML, returning ``(job, show)``; the job's pure ``compute`` then runs in a
        worker thread (GliomaForecastLib.background) polled by a timer; ``job.build`` and ``show(outputs)`` run
        here when it is done. ``show`` returns a note for the status line (e.g. the standard plan's fallback
        warning) or None."""
        try:
            ensureDependencies()
            from GliomaForecastLib.background import BackgroundTask

            with slicer.util.WaitCursor():
                job, show = prepare()
        except Exception as exc:  # shown to the user, with the traceback in the log
            self._fail(title, exc)
            return
        self._title, self._job, self._show = title, job, show
        self._task = BackgroundTask(job.compute).start()
        self.ui.progressBar.setValue(0)
        self.ui.progressBar.setVisible(True)
        self.ui.statusLabel.setText(title)
        self._updateButtons()
        self._timer.start()

    def onCancel(self) -> None:
        if self._task is not None:
            self._task.request_cancel()
            self.ui.statusLabel.setText(f"{self._title}: cancelling...")

    def _poll(self) -> None:
        """Timer slot: show the worker's progress; when it is done, build the nodes (or report why not)."""
        if self._task is None:
            self._timer.stop()
            return
        state = self._task.poll()
        fraction, message = state.progress
        self.ui.progressBar.setValue(int(round(100 * fraction)))
        if not state.done:
            if not self._task.cancel.is_set():
                self.ui.statusLabel.setText(f"{self._title}: {message}")
            return
        self._timer.stop()
        title, job, show = self._title, self._job, self._show
        self._task = self._job = self._show = None
        from GliomaForecastLib.progress import Cancelled

        try:
            if isinstance(state.outcome, Cancelled):
                self.ui.statusLabel.setText(f"{title}: cancelled")
            elif isinstance(state.outcome, BaseException):
                self._fail(title, state.outcome)
            else:
                self.ui.statusLabel.setText(f"{title}: building the output nodes")
                with slicer.util.WaitCursor():
                    note = show(job.build(state.outcome))
                if note:
                    logging.warning(f"{title}: {note}")
                self.ui.statusLabel.setText(f"{title}: done" + (f"; note: {note}" if note else ""))
        except Exception as exc:
            self._fail(title, exc)
        finally:
            self.ui.progressBar.setVisible(False)
            self._updateButtons()

    def _fail(self, title: str, exc: BaseException) -> None:
        """One line to the user, the traceback to the log."""
        logging.error(f"{title} failed", exc_info=(type(exc), exc, exc.__traceback__))
        self.ui.statusLabel.setText(f"{title}: failed")
        slicer.util.errorDisplay(f"{title} failed: {panelMessage(exc)}")

    def _showScore(self, background, score) -> None:
        """Make the volume ``score`` the target volumes' score and show it over ``background``."""
        self._parameterNode.scoreVolume = score
        slicer.util.setSliceViewerLayers(background=background, foreground=score, foregroundOpacity=0.5)

    def _lastScan(self):
        p = self._parameterNode
        return self.logic.scans(p.timepointSegmentations, p.gtvSegmentName, p.referenceFlair)[-1]

    def onLoadSample(self) -> None:
        """Load the sample patient (reading files into MRML nodes happens on the main thread)."""
        try:
            ensureDependencies()
            with slicer.util.WaitCursor():
                loaded = self.logic.loadCase(SAMPLE_CASE)
        except Exception as exc:
            self._fail("Loading the sample patient", exc)
            return
        p = self._parameterNode
        p.timepointSegmentations = [loaded.gtv[day] for day in loaded.days]
        p.brainMask = loaded.brainMask
        p.dose = loaded.dose
        p.useRadiotherapy = loaded.rtStartDay is not None
        if loaded.rtStartDay is not None:
            p.rtStartDay = loaded.rtStartDay
        p.forecastDay = defaultForecastDay(loaded.days)
        slicer.util.setSliceViewerLayers(background=loaded.flair[loaded.days[-1]], fit=True)
        self.ui.statusLabel.setText("Sample patient loaded")

    def onPrepare(self) -> None:
        """Register the selected scans onto the first (the planning scan) and resample them onto its grid; the prepared
        scans, brain mask and dose then become the panel's inputs. Poor registrations are stated in the status line
        (and the log); a scan that will not register fails in one line that states its quality."""
        p = self._parameterNode

        def prepare():
            scans = self.logic.scans(p.timepointSegmentations, p.gtvSegmentName, p.referenceFlair)
            job = self.logic.prepareJob(self.logic.preparationTimepoints(scans), brainMask=p.brainMask, dose=p.dose,
                                        register=p.prepareRegistration, template=p.prepareTemplate)

            def show(nodes):
                p.timepointSegmentations = nodes.segmentations()
                p.brainMask = nodes.brainMask
                if nodes.dose is not None:
                    p.dose = nodes.dose
                slicer.util.setSliceViewerLayers(background=nodes.planningImage(), fit=True)
                return preparationSummary(nodes.records(), nodes.provenance, nodes.warnings)

            return job, show

        self._start("Preparing the scans", prepare)

    def onFitGrowth(self) -> None:
        p = self._parameterNode

        def prepare():
            scans = self.logic.scans(p.timepointSegmentations, p.gtvSegmentName, p.referenceFlair)
            job = self.logic.fitGrowthJob([(day, seg, sid) for day, _, seg, sid in scans],
                                          rtStartDay=p.rtStartDay if p.useRadiotherapy else None,
                                          nBootstrap=p.nBootstrap, seed=p.seed, untilDay=p.forecastDay)
            return job, lambda nodes: self.logic.showChart(nodes[1])

        self._start("Fitting the growth model", prepare)

    def onForecast(self) -> None:
        p = self._parameterNode

        def prepare():
            scans = self.logic.scans(p.timepointSegmentations, p.gtvSegmentName, p.referenceFlair)
            job = self.logic.forecastJob(scans, p.forecastDay, rtStartDay=p.rtStartDay if p.useRadiotherapy else None,
                                         brainMask=p.brainMask, dose=p.dose, forecaster=p.forecaster,
                                         samples=p.samples, seed=p.seed, marginMm=p.marginMm, nBootstrap=p.nBootstrap,
                                         barrier=p.barrier, settings=self._forecasterSettings(), plan=p.plan)

            def show(nodes):
                self._showScore(scans[-1][1], nodes.probability)
                self.logic.showChart(nodes.chart)
                return "; ".join(nodes.warnings) or None

            return job, show

        self._start("Forecasting", prepare)

    def _forecasterSettings(self) -> dict:
        """The panel's settings the selected forecaster takes (``ForecasterEntry.settings``, e.g. the outcome class):
        each read from the parameter node field of the setting's name."""
        p = self._parameterNode
        return {name: getattr(p, name) for name in forecasterEntry(p.forecaster).setting_names}

    def onProbability(self) -> None:
        p = self._parameterNode

        def prepare():
            day, flair, seg, sid = self._lastScan()
            job = self.logic.probabilityMapJob(seg, sid, beta=p.beta, mu=p.mu, day=day)
            return job, lambda node: self._showScore(flair, node)

        self._start("Probability map", prepare)

    def onTargets(self) -> None:
        p = self._parameterNode

        def prepare():
            day, flair, seg, sid = self._lastScan()
            job = self.logic.targetVolumesJob(seg, sid, scoreVolume=p.scoreVolume, marginMm=p.marginMm,
                                              brainMask=p.brainMask, barrier=p.barrier, day=day,
                                              referenceVolume=flair, plan=p.plan)
            from GliomaForecastLib.logic import planWarning

            return job, planWarning

        self._start("Target volumes", prepare)


#
# Logic
#

class GliomaForecastLogic(ScriptedLoadableModuleLogic):
    """The Slicer logic: the console methods of GliomaForecastLib.logic.ForecastLogic on ``slicer.mrmlScene``, plus
    the parameter node and what needs the application (layouts).

    Every public method of ForecastLogic is spelled out below and hands its arguments to it unchanged (arguments,
    units and returns are documented there, and in docs/console.md); ForecastLogic is imported on first use, after
    the dependencies are installed, so that the module loads before they are."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._forecastLogic = None

    @property
    def forecastLogic(self):
        """The GliomaForecastLib ForecastLogic on slicer.mrmlScene, created (after installing the dependencies)
        on first use, so that the module loads before they are installed."""
        if self._forecastLogic is None:
            ensureDependencies()
            from GliomaForecastLib.logic import ForecastLogic

            self._forecastLogic = ForecastLogic()
        return self._forecastLogic

    # --- ForecastLogic's methods, on slicer.mrmlScene ------------------------------------------------
    @property
    def scene(self):
        """ForecastLogic.scene: the MRML scene the logic works on (slicer.mrmlScene)."""
        return self.forecastLogic.scene

    def loadCase(self, *args, **kwargs):
        """ForecastLogic.loadCase: a case manifest as MRML nodes (LoadedCase)."""
        return self.forecastLogic.loadCase(*args, **kwargs)

    def labelMap(self, *args, **kwargs):
        """ForecastLogic.labelMap: a segmentation's BraTS label map (int16) rebuilt from its label segments, or None."""
        return self.forecastLogic.labelMap(*args, **kwargs)

    def probabilityMap(self, *args, **kwargs):
        """ForecastLogic.probabilityMap: the tumor-presence probability volume of a segment."""
        return self.forecastLogic.probabilityMap(*args, **kwargs)

    def probabilityMapJob(self, *args, **kwargs):
        """ForecastLogic.probabilityMapJob: probabilityMap as a background Job."""
        return self.forecastLogic.probabilityMapJob(*args, **kwargs)

    def segmentVolumeMl(self, *args, **kwargs) -> float:
        """ForecastLogic.segmentVolumeMl: a segment's volume (mL)."""
        return self.forecastLogic.segmentVolumeMl(*args, **kwargs)

    def fitGrowth(self, *args, **kwargs):
        """ForecastLogic.fitGrowth: the growth model fitted to segment volumes, as (table, chart)."""
        return self.forecastLogic.fitGrowth(*args, **kwargs)

    def fitGrowthJob(self, *args, **kwargs):
        """ForecastLogic.fitGrowthJob: fitGrowth as a background Job."""
        return self.forecastLogic.fitGrowthJob(*args, **kwargs)

    def targetVolumes(self, *args, **kwargs):
        """ForecastLogic.targetVolumes: the GTV, CTV standard and CTV forecast segmentation."""
        return self.forecastLogic.targetVolumes(*args, **kwargs)

    def targetVolumesJob(self, *args, **kwargs):
        """ForecastLogic.targetVolumesJob: targetVolumes as a background Job."""
        return self.forecastLogic.targetVolumesJob(*args, **kwargs)

    def forecast(self, *args, **kwargs):
        """ForecastLogic.forecast: the forecast at a day as ForecastNodes."""
        return self.forecastLogic.forecast(*args, **kwargs)

    def forecastJob(self, *args, **kwargs):
        """ForecastLogic.forecastJob: forecast as a background Job."""
        return self.forecastLogic.forecastJob(*args, **kwargs)

    def scanImages(self, *args, **kwargs) -> dict:
        """ForecastLogic.scanImages: the scene's other sequences of the scans, {day: {modality: volume}}."""
        return self.forecastLogic.scanImages(*args, **kwargs)

    def preparationTimepoints(self, *args, **kwargs) -> list:
        """ForecastLogic.preparationTimepoints: the panel's scans as Prepare takes them, (day, {modality: volume},
        (segmentation, segment))."""
        return self.forecastLogic.preparationTimepoints(*args, **kwargs)

    def prepare(self, *args, **kwargs):
        """ForecastLogic.prepare: every scan registered onto the first and resampled onto its grid, brain mask and
        tissue maps derived where not given, as PreparedNodes."""
        return self.forecastLogic.prepare(*args, **kwargs)

    def prepareJob(self, *args, **kwargs):
        """ForecastLogic.prepareJob: prepare as a background Job."""
        return self.forecastLogic.prepareJob(*args, **kwargs)

    # --- what needs the application or the parameter node ---------------------------------------------

    def getParameterNode(self) -> GliomaForecastParameterNode:
        return GliomaForecastParameterNode(super().getParameterNode())

    def defaultForecastDay(self, segmentations) -> Optional[float]:
        """The forecast day the panel proposes for these scan segmentations: the last scan day + 90 days
        (GliomaForecastLib.panel.DEFAULT_HORIZON_DAYS); None when no scan has a day."""
        if missingDependencies():  # GliomaForecastLib.logic needs them; the day is proposed once they are there
            return None
        from GliomaForecastLib.logic import timepointDay

        return defaultForecastDay(timepointDay(seg) for seg in segmentations)

    def scans(self, segmentations, segmentName: str, flair=None) -> list:
        """``(day, flairVolume, segmentationNode, segmentId)`` of the selected scan segmentations, sorted by day;
        the FLAIR is each segmentation's reference volume, else ``flair`` (the panel's FLAIR for segmentations
        loaded without one), and the day comes from its attribute or name."""
        from GliomaForecastLib import adapters
        from GliomaForecastLib.logic import timepointDay

        scans = []
        for seg in segmentations:
            day = timepointDay(seg)
            if day is None:
                raise ValueError(f"{seg.GetName()}: no scan day; set the GliomaForecast.Day attribute or put "
                                 f"'day N' in the name")
            reference = adapters.reference_volume(seg) or flair
            if reference is None:
                raise ValueError(f"{seg.GetName()}: no reference volume; choose its FLAIR under 'FLAIR (scans "
                                 f"without one)'")
            scans.append((day, reference, seg, adapters.segment_id(seg, segmentName)))
        return sorted(scans, key=lambda s: s[0])

    @staticmethod
    def showChart(chartNode) -> None:
        """Switch to a layout with a plot view and show ``chartNode`` in it."""
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotView)
        slicer.modules.plots.logic().ShowChartInLayout(chartNode)


#
# Test
#

class GliomaForecastTest(ScriptedLoadableModuleTest):
    """Self-test on the sample patient: load, probability map, growth fit, target volumes by the standard plan's
    convention."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_SamplePatient()

    def test_SamplePatient(self) -> None:
        import numpy as np

        from GliomaForecastLib import adapters
        from gliomaforecast.targets import ctv
        from gliomaforecast.io.case import load_case
        from gliomaforecast.targets.volumes import build_targets, target_seed

        self.delayDisplay("Loading the sample patient")
        if not os.path.exists(SAMPLE_CASE):
            self.skipTest(f"{SAMPLE_CASE} is not there")
        logic = GliomaForecastLogic()
        loaded = logic.loadCase(SAMPLE_CASE)
        last = loaded.days[-1]
        seg = loaded.gtv[last]
        for name in ("Necrosis", "Edema", "Enhancing tumor", "Resection cavity"):  # the last scan's BraTS labels
            self.assertTrue(seg.GetSegmentation().GetSegmentIdBySegmentName(name), name)

        self.delayDisplay("Probability map")
        probability = logic.probabilityMap(seg, "GTV", day=last)
        self.assertTrue(adapters.grid_from_volume(probability).same_as(adapters.grid_from_volume(loaded.flair[last])))
        values = adapters.array_from_volume(probability)
        self.assertGreaterEqual(float(values.min()), 0.0)
        self.assertLessEqual(float(values.max()), 1.0)

        self.delayDisplay("Growth fit")
        table, chart = logic.fitGrowth(loaded.timepoints(), rtStartDay=loaded.rtStartDay, nBootstrap=10)
        self.assertEqual(chart.GetNumberOfPlotSeriesNodes(), 4)
        self.assertGreater(table.GetNumberOfRows(), len(loaded.days))

        self.delayDisplay("Target volumes (standard plan: auto)")
        targets = logic.targetVolumes(seg, "GTV", scoreVolume=probability, brainMask=loaded.brainMask, day=last)
        gtv, grid = adapters.segment_mask(seg, "GTV")
        brain = adapters.array_from_volume(loaded.brainMask) > 0 if loaded.brainMask else None
        case = load_case(SAMPLE_CASE)
        seed = standard_plan.plan_seed(gtv, case.labels(case.timepoints[-1]), standard_plan.AUTO)
        self.assertEqual(seed.convention, standard_plan.ESTRO_EANO)  # the sample's last scan has BraTS labels
        self.assertEqual(targets.GetAttribute("GliomaForecast.Plan"), seed.convention)
        self.assertEqual(targets.GetAttribute("GliomaForecast.PlanSeed"), seed.seed_name)
        # the margin CTV of the tumour core + cavity, with holes filled
        standard = build_targets(seed.tumour, grid.spacing, cavity=seed.cavity, brain_mask=brain).standard
        self.assertTrue(np.array_equal(adapters.segment_mask(targets, "CTV standard")[0], standard))
        self.assertTrue(np.array_equal(adapters.segment_mask(targets, "GTV")[0], gtv))
        self.assertTrue(np.all(standard[ctv.standard_ctv(target_seed(seed.tumour, seed.cavity), grid.spacing,
                                                          brain_mask=brain)]))
        self.assertEqual(int(adapters.segment_mask(targets, "CTV forecast")[0].sum()), int(standard.sum()))
        self.delayDisplay("Test passed")
