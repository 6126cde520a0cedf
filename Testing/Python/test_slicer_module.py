"""GliomaForecast.py outside Slicer: the module, the Slicer logic, the Sample Data registration and the self-test,
with small stand-ins only for what the slicer-core wheel lacks (qt, slicer.app, ScriptedLoadableModule base
classes, parameterNodeWrapper, the SampleData module). The Qt widget itself is not exercised here."""

from __future__ import annotations

import importlib
import json
import sys
import types
import unittest
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer")

from GliomaForecastLib.scene import headless_scene  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CASE = REPO / "Resources" / "SampleData" / "sample_patient" / "case.json"


class _Signals:
    def __init__(self):
        self.connected = []

    def connect(self, signal, slot):
        self.connected.append((signal, slot))


@pytest.fixture
def module(monkeypatch):
    """GliomaForecast.py imported with the stand-ins; yields (module, registered sample data sources, app)."""
    qt = types.ModuleType("qt")
    qt.QIcon = lambda path: ("QIcon", path)
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
    slm.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {})
    pnw = types.ModuleType("slicer.parameterNodeWrapper")
    pnw.parameterNodeWrapper = lambda cls: cls
    pnw.Choice = lambda choices: ("Choice", tuple(choices))
    pnw.WithinRange = lambda lo, hi: ("WithinRange", lo, hi)
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
    p = gf.GliomaForecastParameterNode
    assert (p.gtvSegmentName, p.rtStartDay, p.nBootstrap, p.beta, p.mu, p.marginMm) == ("GTV", 21.0, 100, 0.1, 15.0,
                                                                                           15.0)


@pytest.mark.skipif(not SAMPLE_CASE.exists(), reason="the sample patient is not generated yet")
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


@pytest.mark.skipif(not SAMPLE_CASE.exists(), reason="the sample patient is not generated yet")
def test_self_test_runs_on_the_sample_patient(module):
    gf, _, _ = module
    result = unittest.TestResult()
    gf.GliomaForecastTest("test_SamplePatient").run(result)
    assert result.wasSuccessful(), result.errors + result.failures
    assert not result.skipped
