"""Long work off the GUI thread, headless on the slicer-core wheel: each console method's pure compute part runs in
a GliomaForecastLib.background.BackgroundTask while this (main) thread polls it; the nodes built from its result
equal the synchronous console method's; Cancel leaves no node; an exception reaches poll()."""

from __future__ import annotations

import ast
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import slicer

from conftest import oblique_grid
from GliomaForecastLib import adapters
from GliomaForecastLib.background import BackgroundTask
from GliomaForecastLib.logic import ForecastLogic
from GliomaForecastLib.progress import Cancelled
from GliomaForecastLib.scene import headless_scene

LIB = Path(__file__).resolve().parents[2] / "GliomaForecast" / "GliomaForecastLib"


def _poll_until_done(task: BackgroundTask):
    """Poll like the panel's timer does; returns (final state, progress seen). The loop ends when the worker is
    done, not after some time."""
    seen = []
    while True:
        state = task.poll()
        seen.append(state.progress)
        if state.done:
            return state, seen
        time.sleep(0.005)


def _names(segmentationNode) -> list:
    segmentation = segmentationNode.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


@pytest.fixture
def case(make_case):
    headless_scene()
    path, grid = make_case(3, grid=oblique_grid((8, 14, 16), (3.0, 1.2, 1.0)))
    logic = ForecastLogic()
    loaded = logic.loadCase(path)
    return logic, loaded, path, grid


def _new_nodes(scene, before: set) -> list:
    return [scene.GetNthNode(i).GetName() for i in range(scene.GetNumberOfNodes())
            if scene.GetNthNode(i).GetID() not in before]


def _node_ids(scene) -> set:
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def test_compute_module_never_touches_mrml():
    tree = ast.parse((LIB / "compute.py").read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not any(n.split(".")[0] in ("slicer", "vtk", "qt", "ctk") for n in names)
    assert "adapters" not in {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}


def test_growth_and_targets_in_a_thread_equal_the_console_methods(case):
    logic, loaded, _, grid = case
    last = loaded.days[-1]
    seg = loaded.gtv[last]

    job = logic.fitGrowthJob(loaded.timepoints(), rtStartDay=21, nBootstrap=6, seed=2, untilDay=300)
    workers = []

    def compute(progress, cancel):
        workers.append(threading.get_ident())
        return job.compute(progress, cancel)

    state, seen = _poll_until_done(BackgroundTask(compute).start())
    assert workers and workers[0] != threading.get_ident()  # the compute ran in a worker thread
    assert state.done and not isinstance(state.outcome, BaseException)
    assert seen[-1][1] == "Sampling the growth curve" and all(0.0 <= f < 1.0 for f, _ in seen)
    table, chart = job.build(state.outcome)
    ref_table, ref_chart = logic.fitGrowth(loaded.timepoints(), rtStartDay=21, nBootstrap=6, seed=2, untilDay=300)
    for column in ("Day", "Median (mL)", "Lower 2.5% (mL)", "Upper 97.5% (mL)", "Observed (mL)"):
        np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(table, column),
                                      slicer.util.arrayFromTableColumn(ref_table, column), err_msg=column)
    assert table.GetAttribute("GliomaForecast.Model") == ref_table.GetAttribute("GliomaForecast.Model")
    assert chart.GetNumberOfPlotSeriesNodes() == ref_chart.GetNumberOfPlotSeriesNodes() == 4

    probability_job = logic.probabilityMapJob(seg, "GTV", beta=0.2, mu=8.0, day=last)
    state, _ = _poll_until_done(BackgroundTask(probability_job.compute).start())
    probability = probability_job.build(state.outcome)
    reference = logic.probabilityMap(seg, "GTV", beta=0.2, mu=8.0, day=last)
    assert probability.GetName() == "GTV probability day 120" and reference.GetName() == "GTV probability day 120_1"
    np.testing.assert_array_equal(adapters.array_from_volume(probability), adapters.array_from_volume(reference))
    assert adapters.grid_from_volume(probability).same_as(adapters.grid_from_volume(reference), rtol=0, atol=0)

    targets_job = logic.targetVolumesJob(seg, "GTV", scoreVolume=probability, marginMm=6.0,
                                         brainMask=loaded.brainMask, day=last)
    state, _ = _poll_until_done(BackgroundTask(targets_job.compute).start())
    targets = targets_job.build(state.outcome)
    ref_targets = logic.targetVolumes(seg, "GTV", scoreVolume=probability, marginMm=6.0, brainMask=loaded.brainMask,
                                      day=last)
    assert _names(targets) == _names(ref_targets) == ["GTV", "CTV standard", "CTV forecast"]
    assert adapters.reference_volume(targets) is adapters.reference_volume(ref_targets) is loaded.flair[last]
    for name in _names(targets):
        got, got_grid = adapters.segment_mask(targets, name)
        want, want_grid = adapters.segment_mask(ref_targets, name)
        assert got_grid.same_as(want_grid, rtol=0, atol=0) and np.array_equal(got, want), name
        assert got_grid.same_as(grid, rtol=0, atol=1e-6)  # the case was written as NIfTI (float32 geometry)


def test_forecast_in_a_thread_while_the_main_thread_polls_equals_the_console_method(case):
    logic, loaded, _, _ = case
    timepoints = [(d, loaded.flair[d], loaded.gtv[d], "GTV") for d in loaded.days]
    settings = dict(rtStartDay=21, brainMask=loaded.brainMask, dose=loaded.dose, forecaster="persistence",
                    nBootstrap=4, marginMm=6.0)
    job = logic.forecastJob(timepoints, 200, **settings)
    state, seen = _poll_until_done(BackgroundTask(job.compute).start())
    assert state.done and not isinstance(state.outcome, BaseException), state.outcome
    assert seen[-1] == (0.85, "Growth curve and displacement")
    nodes = job.build(state.outcome)
    ref = logic.forecast(timepoints, 200, **settings)
    for got, want in ((nodes.probability, ref.probability), (nodes.uncertainty, ref.uncertainty),
                      (nodes.flair, ref.flair)):
        np.testing.assert_array_equal(adapters.array_from_volume(got), adapters.array_from_volume(want))
        assert adapters.grid_from_volume(got).same_as(adapters.grid_from_volume(want), rtol=0, atol=0)
    assert nodes.probability.GetName() == "Forecast probability day 200"
    assert nodes.displacement is None and ref.displacement is None  # persistence gives no field: no transform node
    np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(nodes.table, "Median (mL)"),
                                  slicer.util.arrayFromTableColumn(ref.table, "Median (mL)"))
    assert _names(nodes.targets) == _names(ref.targets) == ["GTV", "CTV standard", "CTV forecast"]
    for name in _names(nodes.targets):
        assert np.array_equal(adapters.segment_mask(nodes.targets, name)[0],
                              adapters.segment_mask(ref.targets, name)[0]), name


def test_cancel_during_a_forecast_leaves_no_new_node_and_reports_cancellation(case):
    logic, loaded, _, _ = case
    scene = logic.scene
    before = _node_ids(scene)
    timepoints = [(d, loaded.flair[d], loaded.gtv[d], "GTV") for d in loaded.days]
    job = logic.forecastJob(timepoints, 200, rtStartDay=21, forecaster="persistence", nBootstrap=4)
    assert _new_nodes(scene, before) == []  # gathering the inputs leaves nothing behind
    reached = threading.Event()
    resume = threading.Event()

    def compute(progress, cancel):
        # The user clicks Cancel while the core is fitting the growth model (inside run_forecast).
        def report(fraction, message):
            progress(fraction, message)
            if message == "fitting the growth model":
                reached.set()
                assert resume.wait(timeout=600)  # a guard against a hang, not a timing check

        return job.compute(report, cancel)

    task = BackgroundTask(compute).start()
    assert reached.wait(timeout=600)
    assert not task.poll().done and task.poll().progress[1] == "fitting the growth model"
    task.request_cancel()
    resume.set()
    state, _ = _poll_until_done(task)
    assert state.done and isinstance(state.outcome, Cancelled)
    assert _new_nodes(scene, before) == []


def test_a_result_that_arrives_after_cancel_is_discarded():
    resume = threading.Event()

    def compute(progress, cancel):
        assert resume.wait(timeout=600)
        return "nodes to build"  # ignores cancel, like a core call that cannot stop

    task = BackgroundTask(compute).start()
    task.request_cancel()
    resume.set()
    state, _ = _poll_until_done(task)
    assert isinstance(state.outcome, Cancelled)


def test_an_exception_in_the_compute_is_delivered_to_poll(case):
    logic, loaded, _, _ = case
    scene = logic.scene
    before = _node_ids(scene)
    timepoints = [(d, loaded.flair[d], loaded.gtv[d], "GTV") for d in loaded.days]
    # A target day before the last scan: the core refuses it inside run_forecast, in the worker thread.
    job = logic.forecastJob(timepoints, 30, forecaster="persistence", nBootstrap=2)
    state, _ = _poll_until_done(BackgroundTask(job.compute).start())
    assert state.done
    assert type(state.outcome).__name__ == "InputError" and "not after the last scan" in str(state.outcome)
    assert state.outcome.__traceback__ is not None
    assert _new_nodes(scene, before) == []


def test_progress_is_the_latest_report_only():
    step = threading.Event()
    go = threading.Event()

    def compute(progress, cancel):
        progress(0.25, "first")
        progress(0.5, "second")
        step.set()
        assert go.wait(timeout=600)
        return 42

    task = BackgroundTask(compute)
    assert task.poll() == (False, (0.0, "Starting"), None)
    task.start()
    assert step.wait(timeout=600)
    assert task.poll() == (False, (0.5, "second"), None)
    go.set()
    state, _ = _poll_until_done(task)
    assert state == (True, (0.5, "second"), 42)
