"""GliomaForecast.py outside Slicer: the module, the Slicer logic, the Sample Data registration, the self-test and
the panel's background-job flow, with small stand-ins only for what the slicer-core wheel lacks (qt with a QTimer
that the test fires by hand, slicer.app, ScriptedLoadableModule base classes, parameterNodeWrapper, the SampleData
module, the .ui's widgets). Qt's real event loop and widgets are not exercised here."""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import sys
import threading
import time
import types
import typing
import unittest
from pathlib import Path

import pytest
import slicer

from GliomaForecastLib.scene import headless_scene

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CASE = REPO / "Resources" / "SampleData" / "sample_patient" / "case.json"


class _Signals:
    def __init__(self):
        self.connected = []

    def connect(self, signal, slot):
        self.connected.append((signal, slot))


class _QTimer(_Signals):
    """qt.QTimer stand-in: the test fires ``timeout()`` by hand while ``active``."""

    def __init__(self):
        super().__init__()
        self.active = False
        self.interval = None

    def setInterval(self, ms):
        self.interval = ms

    def start(self):
        self.active = True

    def stop(self):
        self.active = False


class _FakeWidget(_Signals):
    """A .ui widget stand-in that remembers what the panel set."""

    def __init__(self):
        super().__init__()
        self.value, self.visible, self.text, self.enabled = None, None, "", None

    def setValue(self, value):
        self.value = value

    def setVisible(self, visible):
        self.visible = visible

    def setText(self, text):
        self.text = text

    def setEnabled(self, enabled):
        self.enabled = enabled

    def setMRMLScene(self, scene):
        pass


class _Choice:
    """Stand-in for slicer.parameterNodeWrapper.Choice: a value must be one of ``choices``."""

    def __init__(self, choices):
        self.choices = tuple(choices)

    def validate(self, value):
        if value not in self.choices:
            raise ValueError(f"{value!r} is not one of {self.choices}")


class _WithinRange:
    """Stand-in for slicer.parameterNodeWrapper.WithinRange: lo <= value <= hi."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def validate(self, value):
        if not self.lo <= value <= self.hi:
            raise ValueError(f"{value!r} is outside [{self.lo}, {self.hi}]")


_PLAIN = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


def _node_class(hint) -> bool:
    return isinstance(hint, type) and issubclass(hint, slicer.vtkMRMLNode)


def _parameter_node_wrapper(cls):
    """Stand-in for slicer.parameterNodeWrapper that checks what the real one needs of a class before it can store it
    in a parameter node: every field's type is one it serializes (bool, int, float, str, an MRML node class or a list
    of one, optionally Annotated with validators), a node field has no default (None), a plain field's default has
    its type (an int for a float is fine) and passes every validator (Choice, WithinRange). Records the defaults as
    ``cls.defaults``; raises TypeError / ValueError naming the field otherwise."""
    defaults = {}
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        validators = ()
        if typing.get_origin(hint) is typing.Annotated:
            hint, *validators = typing.get_args(hint)
        default = cls.__dict__.get(name)
        if typing.get_origin(hint) is list and all(_node_class(a) for a in typing.get_args(hint)):
            default = [] if default is None else default
        elif _node_class(hint):
            if default is not None:
                raise TypeError(f"{name}: a node field has no default, got {default!r}")
        elif hint in _PLAIN:
            if default is None or type(default) not in _PLAIN[hint]:
                raise TypeError(f"{name}: default {default!r} is not a {hint.__name__}")
        else:
            raise TypeError(f"{name}: parameterNodeWrapper cannot store {hint!r}")
        for validator in validators:
            try:
                validator.validate(default)
            except ValueError as exc:
                raise ValueError(f"{name}: default {exc}") from None
        defaults[name] = default
    cls.defaults = types.MappingProxyType(defaults)
    return cls


@pytest.mark.parametrize("body, says", [
    ("x: Annotated[int, WithinRange(1, 5)] = 9", "x: default 9 is outside [1, 5]"),
    ("x: Annotated[str, Choice(['a', 'b'])] = 'c'", "x: default 'c' is not one of ('a', 'b')"),
    ("x: int = 1.5", "x: default 1.5 is not a int"),
    ("x: dict = {}", "x: parameterNodeWrapper cannot store"),
    ("x: vtkMRMLScalarVolumeNode = 3", "x: a node field has no default"),
])
def test_the_wrapper_stand_in_refuses_what_slicer_cannot_store(body: str, says: str) -> None:
    """The stand-in can fail: each class here has one field Slicer's wrapper could not store or default."""
    namespace = {"Annotated": typing.Annotated, "WithinRange": _WithinRange, "Choice": _Choice,
                 "vtkMRMLScalarVolumeNode": slicer.vtkMRMLScalarVolumeNode}
    exec(compile(f"class Bad:\n    {body}\n", "<bad>", "exec", dont_inherit=True), namespace)  # real annotations
    with pytest.raises((TypeError, ValueError), match=re.escape(says)):
        _parameter_node_wrapper(namespace["Bad"])


@pytest.fixture
def module(monkeypatch):
    """GliomaForecast.py imported with the stand-ins; yields (module, registered sample data sources, app)."""
    qt = types.ModuleType("qt")
    qt.QIcon = lambda path: ("QIcon", path)
    qt.QTimer = _QTimer
    slm = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def getParameterNode(self):
            return slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, msec=0):
            pass

    slm.ScriptedLoadableModule = ScriptedLoadableModule
    slm.ScriptedLoadableModuleLogic = ScriptedLoadableModuleLogic
    slm.ScriptedLoadableModuleTest = ScriptedLoadableModuleTest
    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent
            self.layout = types.SimpleNamespace(addWidget=lambda widget: None)

        def setup(self):
            pass

    slm.ScriptedLoadableModuleWidget = ScriptedLoadableModuleWidget
    pnw = types.ModuleType("slicer.parameterNodeWrapper")
    pnw.parameterNodeWrapper = _parameter_node_wrapper
    pnw.Choice = _Choice
    pnw.WithinRange = _WithinRange
    registered = []
    sample_data = types.ModuleType("SampleData")
    sample_data.SampleDataLogic = types.SimpleNamespace(
        registerCustomSampleDataSource=lambda **kwargs: registered.append(kwargs))
    app = _Signals()
    for name, mod in (("qt", qt), ("slicer.ScriptedLoadableModule", slm), ("slicer.parameterNodeWrapper", pnw),
                      ("SampleData", sample_data)):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(slicer, "app", app, raising=False)
    monkeypatch.syspath_prepend(str(REPO / "GliomaForecast"))
    sys.modules.pop("GliomaForecast", None)
    gf = importlib.import_module("GliomaForecast")
    headless_scene()
    yield gf, registered, app
    sys.modules.pop("GliomaForecast", None)


def test_module_metadata_and_sample_data_hook(module):
    gf, _, app = module
    parent = types.SimpleNamespace()
    gf.GliomaForecast(parent)
    assert parent.categories == ["Radiotherapy"] and parent.title == "Glioma Forecast"
    for reference in ("Multi-Task Diffusion", "Mechanistic Learning", "PREDICT-GBM", "10.1007/978-3-032-05472-2_18"):
        assert reference in parent.helpText
    assert parent.acknowledgementText.strip()
    assert Path(parent.icon[1]).is_file()
    assert app.connected == [("startupCompleted()", gf.registerSampleData)]


def test_resources_resolve_in_the_source_tree(module):
    gf, _, _ = module
    assert Path(gf.resourceFile("UI", "GliomaForecast.ui")).is_file()
    assert Path(gf.REQUIREMENTS).is_file()
    assert gf.missingDependencies() == []  # the test environment has every requirement


def test_parameter_node_defaults(module):
    gf, _, _ = module
    d = gf.GliomaForecastParameterNode.defaults  # the stand-in checked every field as Slicer's wrapper would
    assert (d["gtvSegmentName"], d["rtStartDay"], d["nBootstrap"], d["beta"], d["mu"], d["marginMm"]) == (
        "GTV", 21.0, 100, 0.1, 15.0, 15.0)
    assert d["timepointSegmentations"] == [] and d["brainMask"] is None
    from gliomaforecast.targets import standard_plan

    assert d["plan"] == standard_plan.AUTO
    (choice,) = gf.GliomaForecastParameterNode.__annotations__["plan"].__metadata__
    assert choice.choices == standard_plan.CHOICES


def test_sample_data_source_loads_the_sample_patient(module):
    gf, registered, _ = module
    gf.registerSampleData()
    assert len(registered) == 1 and registered[0]["category"] == "Glioma Forecast"
    nodes = registered[0]["customDownloader"](None)
    names = [n.GetName() for n in nodes]
    days = [tp["day"] for tp in json.loads(SAMPLE_CASE.read_text())["timepoints"]]
    assert names == [f"FLAIR day {d}" for d in days] + [f"GTV day {d}" for d in days]


def test_slicer_logic_scans_and_delegation(module):
    gf, _, _ = module
    import numpy as np

    from gliomaforecast.geometry import Grid
    from GliomaForecastLib import adapters

    logic = gf.GliomaForecastLogic()
    grid = Grid.identity((6, 8, 8), (2.0, 2.0, 2.0))
    segs = []
    for day in (90, 0):
        flair = adapters.add_volume(slicer.mrmlScene, np.zeros(grid.shape, np.float32), grid, f"FLAIR day {day}")
        seg = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"GTV day {day}")
        seg.SetReferenceImageGeometryParameterFromVolumeNode(flair)
        mask = np.zeros(grid.shape, bool)
        mask[2:4, 3:5, 3:5 + day // 90] = True
        adapters.add_segment_from_mask(seg, mask, grid, "GTV")
        segs.append((seg, flair))
    scans = logic.scans([s for s, _ in segs], "GTV")
    assert [s[0] for s in scans] == [0.0, 90.0]
    assert scans[0][1] is segs[1][1] and scans[1][2] is segs[0][0]
    assert logic.segmentVolumeMl(segs[0][0], "GTV") == pytest.approx(12 * 8 / 1000)
    segs[0][0].SetName("tumor")
    with pytest.raises(ValueError, match="no scan day"):
        logic.scans([segs[0][0]], "GTV")


def test_self_test_runs_on_the_sample_patient(module):
    gf, _, _ = module
    result = unittest.TestResult()
    gf.GliomaForecastTest("test_SamplePatient").run(result)
    assert result.wasSuccessful(), result.errors + result.failures
    assert not result.skipped


# --- the panel's background jobs (timer fired by hand; no Qt event loop) ------------------------------

class _Params:
    """The parameter node as the panel reads it (the wrapper itself needs Slicer's parameterNodeWrapper)."""

    def __init__(self, **values):
        self.__dict__.update(values)

    def connectGui(self, ui):
        return "gui"

    def disconnectGui(self, tag):
        pass

    def AddObserver(self, event, callback, priority=0.0):
        return 1

    def RemoveObserver(self, tag):
        pass


class _UI(types.SimpleNamespace):
    def __getattr__(self, name):  # every named widget of the .ui, made on first use
        widget = _FakeWidget()
        setattr(self, name, widget)
        return widget


@pytest.fixture
def panel(module, monkeypatch, make_case):
    """The widget after setup() on a loaded synthetic case; yields (gf, widget, ui, timer, shown charts, errors)."""
    gf, _, _ = module
    ui, errors, charts = _UI(), [], []
    monkeypatch.setattr(slicer.util, "loadUI", lambda path: _FakeWidget(), raising=False)
    monkeypatch.setattr(slicer.util, "childWidgetVariables", lambda widget: ui, raising=False)
    monkeypatch.setattr(slicer.util, "WaitCursor", contextlib.nullcontext, raising=False)
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kw: errors.append(text), raising=False)
    monkeypatch.setattr(gf.GliomaForecastLogic, "showChart", staticmethod(charts.append))
    path, _ = make_case(3)
    loaded = gf.GliomaForecastLogic().loadCase(path)
    params = _Params(timepointSegmentations=[loaded.gtv[d] for d in loaded.days], gtvSegmentName="GTV",
                     brainMask=loaded.brainMask, barrier=None, dose=loaded.dose, referenceFlair=None, useRadiotherapy=True,
                     rtStartDay=21.0, nBootstrap=10, forecastDay=200.0, forecaster="persistence", samples=2, seed=0,
                     beta=0.1, mu=15.0, marginMm=6.0, plan="auto", scoreVolume=None)
    monkeypatch.setattr(gf.GliomaForecastLogic, "getParameterNode", lambda self: params)
    widget = gf.GliomaForecastWidget()
    widget.setup()
    yield gf, widget, ui, widget._timer, charts, errors, params
    widget.cleanup()


def _fire_until_stopped(timer):
    """Fire the timer as Qt would every 100 ms, until the panel stops it (the worker is done)."""
    (signal, slot), = timer.connected
    assert signal == "timeout()"
    while timer.active:
        slot()
        time.sleep(0.005)


def _ids(scene) -> set:
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def test_panel_runs_the_growth_fit_in_the_background_and_builds_on_completion(panel):
    gf, widget, ui, timer, charts, errors, params = panel
    assert timer.interval == gf.POLL_INTERVAL_MS == 100 and not timer.active
    assert ("clicked(bool)", widget.onCancel) in ui.cancelButton.connected
    assert ui.fitGrowthButton.enabled and not ui.cancelButton.enabled
    widget.onFitGrowth()
    assert timer.active and ui.progressBar.visible
    assert not ui.fitGrowthButton.enabled and not ui.forecastButton.enabled and not ui.loadSampleButton.enabled
    assert ui.cancelButton.enabled
    _fire_until_stopped(timer)
    assert errors == [] and len(charts) == 1 and charts[0].IsA("vtkMRMLPlotChartNode")
    assert ui.statusLabel.text == "Fitting the growth model: done" and not ui.progressBar.visible
    assert ui.fitGrowthButton.enabled and not ui.cancelButton.enabled
    table = slicer.mrmlScene.GetFirstNodeByName("Growth fit (days 0-120)")
    assert table is not None and slicer.util.arrayFromTableColumn(table, "Day")[-1] == 200.0


def test_panel_cancel_discards_the_running_forecast(panel):
    gf, widget, ui, timer, charts, errors, params = panel
    from GliomaForecastLib.logic import Job

    reached, resume = threading.Event(), threading.Event()
    forecastJob = widget.logic.forecastJob

    def blockingJob(*args, **kwargs):
        job = forecastJob(*args, **kwargs)

        def compute(progress, cancel):
            reached.set()
            assert resume.wait(timeout=600)  # a guard against a hang, not a timing check
            return job.compute(progress, cancel)

        return Job(job.title, compute, job.build)

    widget.logic.forecastJob = blockingJob
    before = _ids(slicer.mrmlScene)
    widget.onForecast()
    assert reached.wait(timeout=600)
    ui.cancelButton.connected[-1][1]()  # the Cancel button's slot
    resume.set()
    _fire_until_stopped(timer)
    assert ui.statusLabel.text == "Forecasting: cancelled" and errors == [] and charts == []
    assert _ids(slicer.mrmlScene) == before and params.scoreVolume is None
    assert ui.forecastButton.enabled and not ui.cancelButton.enabled


def test_panel_shows_a_worker_error_in_one_line_and_builds_nothing(panel):
    gf, widget, ui, timer, charts, errors, params = panel
    params.forecastDay = 30.0  # before the last scan (day 120): the core refuses it in the worker thread
    before = _ids(slicer.mrmlScene)
    widget.onForecast()
    _fire_until_stopped(timer)
    assert len(errors) == 1 and "\n" not in errors[0]
    assert errors[0].startswith("Forecasting failed: ") and "not after the last scan" in errors[0]
    assert ui.statusLabel.text == "Forecasting: failed" and _ids(slicer.mrmlScene) == before
    assert ui.forecastButton.enabled


def test_panel_reports_a_gathering_error_without_starting_a_task(panel):
    gf, widget, ui, timer, charts, errors, params = panel
    params.timepointSegmentations[0].SetName("tumor")  # no day in the name and no day attribute
    params.timepointSegmentations[0].RemoveAttribute("GliomaForecast.Day")
    widget.onFitGrowth()
    assert not timer.active and widget._task is None and ui.fitGrowthButton.enabled
    assert errors == ["Fitting the growth model failed: tumor: no scan day; set the GliomaForecast.Day attribute or "
                      "put 'day N' in the name"]


def test_panel_probability_map_then_target_volumes_from_it(panel, monkeypatch):
    gf, widget, ui, timer, charts, errors, params = panel
    from gliomaforecast import sdf
    from gliomaforecast.targets import ctv
    from GliomaForecastLib import adapters

    layers = []
    monkeypatch.setattr(slicer.util, "setSliceViewerLayers", lambda **kw: layers.append(kw), raising=False)
    seg = params.timepointSegmentations[-1]  # day 120, the last scan
    widget.onProbability()
    _fire_until_stopped(timer)
    assert errors == [] and ui.statusLabel.text == "Probability map: done"
    probability = params.scoreVolume
    assert probability is not None and probability.GetName() == "GTV probability day 120"
    gtv, grid = adapters.segment_mask(seg, "GTV")
    expected = sdf.tumor_probability(gtv, grid.spacing, beta=params.beta, mu=params.mu)
    assert adapters.grid_from_volume(probability).same_as(grid, atol=1e-9, rtol=0)
    assert (adapters.array_from_volume(probability) == expected).all()
    assert layers == [dict(background=adapters.reference_volume(seg), foreground=probability, foregroundOpacity=0.5)]

    widget.onTargets()
    _fire_until_stopped(timer)
    targets = slicer.mrmlScene.GetFirstNodeByName("GTV targets day 120")
    assert targets is not None and targets.GetAttribute("GliomaForecast.Score") == probability.GetName()
    # plan auto on a scan without label segments: the flair plan, and the status line says why
    assert targets.GetAttribute("GliomaForecast.Plan") == "flair"
    warning = targets.GetAttribute("GliomaForecast.PlanWarning")
    assert warning and "no BraTS labels" in warning
    assert errors == [] and ui.statusLabel.text == f"Target volumes: done; note: {warning}"
    assert params.scoreVolume is probability
    brain = adapters.array_from_volume(params.brainMask) > 0
    standard = ctv.standard_ctv(gtv, grid.spacing, margin_mm=params.marginMm, brain_mask=brain)
    forecast = ctv.isovolumetric_ctv(expected, int(standard.sum()), grid.spacing, gtv=gtv, brain_mask=brain)
    for name, mask in (("GTV", gtv), ("CTV standard", standard), ("CTV forecast", forecast)):
        assert (adapters.segment_mask(targets, name)[0] == mask).all(), name
    assert len(layers) == 1 and charts == []  # target volumes change no view


def test_panel_passes_its_plan_to_the_logic(panel):
    """The panel's Standard plan reaches the logic: estro-eano on scans without label segments fails in one line
    naming the segmentation, for the target volumes and for the forecast, and builds nothing."""
    gf, widget, ui, timer, charts, errors, params = panel
    params.plan = "estro-eano"
    before = _ids(slicer.mrmlScene)
    widget.onTargets()
    _fire_until_stopped(timer)
    widget.onForecast()
    _fire_until_stopped(timer)
    assert len(errors) == 2 and all("\n" not in e and "estro-eano" in e for e in errors)
    assert errors[0].startswith("Target volumes failed: segmentation 'GTV day 120'")
    assert errors[1].startswith("Forecasting failed: segmentation 'GTV day 120'") and widget._task is None
    assert _ids(slicer.mrmlScene) == before
    params.plan = "flair"
    widget.onTargets()
    _fire_until_stopped(timer)
    assert len(errors) == 2 and ui.statusLabel.text == "Target volumes: done"  # flair asked for: no fallback note
    assert slicer.mrmlScene.GetFirstNodeByName("GTV targets day 120").GetAttribute("GliomaForecast.Plan") == "flair"


# --- issue 17, item 10: default forecast day, scans without a reference volume, panel wording -----------

def test_panel_proposes_the_last_scan_plus_90_days_when_the_scans_change(panel):
    gf, widget, ui, timer, charts, errors, params = panel
    assert params.forecastDay == 200.0  # opening on chosen scans keeps the saved day
    params.timepointSegmentations = params.timepointSegmentations[:2]
    widget._updateButtons()  # what the parameter node's Modified event calls
    assert params.forecastDay == 60.0 + 90.0
    params.forecastDay = 400.0  # the user's own choice stays while the scans do not change
    widget._updateButtons()
    assert params.forecastDay == 400.0


def _drop_references(segmentations):
    from GliomaForecastLib import adapters

    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    flairs = [adapters.reference_volume(seg) for seg in segmentations]
    for seg in segmentations:
        seg.RemoveNodeReferenceIDs(role)
        assert adapters.reference_volume(seg) is None
    return flairs


def test_panel_uses_the_chosen_flair_for_segmentations_without_a_reference(panel):
    gf, widget, ui, timer, charts, errors, params = panel
    from GliomaForecastLib import adapters

    flairs = _drop_references(params.timepointSegmentations)
    widget.onForecast()  # no FLAIR chosen: one line naming the panel's control, no AttributeError
    assert not timer.active and len(errors) == 1
    assert "no reference volume; choose its FLAIR under 'FLAIR (scans without one)'" in errors[0]
    errors.clear()
    params.referenceFlair = flairs[-1]
    widget.onForecast()
    _fire_until_stopped(timer)
    assert errors == [] and ui.statusLabel.text.startswith("Forecasting: done; note: the planning scan has no BraTS")
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    targets = slicer.mrmlScene.GetFirstNodeByName("Targets day 200")
    assert targets.GetNodeReference(role) is flairs[-1]  # what DICOM RTSTRUCT export needs
    parameter = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    assert targets.GetSegmentation().GetConversionParameter(parameter)
    assert adapters.segment_mask(targets, "GTV")[1].same_as(adapters.grid_from_volume(flairs[-1]))

    widget.onTargets()  # the target volumes of the last scan reference the chosen FLAIR too
    _fire_until_stopped(timer)
    assert errors == []
    assert slicer.mrmlScene.GetFirstNodeByName("GTV targets day 120").GetNodeReference(role) is flairs[-1]


def test_panel_errors_name_its_controls_never_flags_or_in_memory_files(panel):
    gf, widget, ui, timer, charts, errors, params = panel
    params.forecastDay = 30.0
    widget.onForecast()
    _fire_until_stopped(timer)
    assert errors == ["Forecasting failed: Forecast day: target day 30 is not after the last scan (day 120)"]


def test_panel_message_wording():
    from gliomaforecast.errors import InputError
    from GliomaForecastLib.panel import panelMessage

    assert panelMessage(InputError(None, "samples", "must be at least 1, got 0")) == "Samples: must be at least 1, got 0"
    assert panelMessage(InputError("--margin-mm", None, "must be >= 0")) == "Margin: must be >= 0"
    assert panelMessage(InputError("<memory>/P/timepoints[1].gtv", "timepoints[1].gtv", "GTV is empty")) == \
        "scan 2 (gtv): GTV is empty"
    text = panelMessage(InputError("<memory>/P", "timepoints", "has 1 scan: use --forecaster persistence"))
    assert "--" not in text and "<memory>" not in text and "Forecaster" in text
    import tempfile
    temp = f"{tempfile.gettempdir()}/gf_case_123/case.json"
    assert tempfile.gettempdir() not in panelMessage(ValueError(f"cannot read {temp}"))


# --- forecaster settings and the logic's methods, spelled out -----------------------------------------------------

def test_parameter_node_outcome_choice_is_the_registry_declaration(module):
    gf, _, _ = module
    from gliomaforecast.forecasters.registry import OUTCOME

    assert gf.GliomaForecastParameterNode.defaults["outcome"] == OUTCOME.default
    (choice,) = gf.GliomaForecastParameterNode.__annotations__["outcome"].__metadata__
    assert choice.choices == OUTCOME.choices


def test_panel_setting_controls_follow_the_selected_forecaster(panel):
    gf, widget, ui, timer, charts, errors, params = panel
    from gliomaforecast.forecasters.registry import OUTCOME, setting_help

    assert ui.outcomeComboBox.toolTip == setting_help(OUTCOME)
    assert ui.outcomeComboBox.enabled is False and widget._forecasterSettings() == {}  # persistence takes none
    params.forecaster, params.outcome = "latent-diffusion", "both"
    widget._updateButtons()
    assert ui.outcomeComboBox.enabled is True and widget._forecasterSettings() == {"outcome": "both"}


def test_slicer_logic_spells_out_every_forecast_logic_method(module):
    gf, _, _ = module
    from GliomaForecastLib.logic import ForecastLogic

    public = sorted(n for n in vars(ForecastLogic) if not n.startswith("_"))
    assert "__getattr__" not in vars(gf.GliomaForecastLogic)
    assert [n for n in public if n not in vars(gf.GliomaForecastLogic)] == []

    class Recorder:
        scene = "the scene"

        def __getattr__(self, name):
            return lambda *args, **kwargs: (name, args, kwargs)

    logic = gf.GliomaForecastLogic()
    logic._forecastLogic = Recorder()
    assert logic.scene == "the scene"
    for name in public:
        if name != "scene":
            assert getattr(logic, name)(1, key=2) == (name, (1,), {"key": 2}), name
