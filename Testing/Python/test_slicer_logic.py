"""Headless tests of GliomaForecastLib on the slicer-core wheel: real MRML nodes, exact geometry, the console
methods against the core functions, and .seg.nrrd written by the MRML storage node read back bit-exactly."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import slicer
import vtk

from GliomaForecastLib import adapters, conventions
from GliomaForecastLib.logic import ForecastLogic, LoadedCase, timepointDay
from GliomaForecastLib.progress import Cancelled
from GliomaForecastLib.scene import headless_scene
from gliomaforecast import growth, sdf
from gliomaforecast.targets import ctv
from gliomaforecast.targets import standard_plan
from gliomaforecast.geometry import Grid
from gliomaforecast.io.images import read_segmentation, write_image
from gliomaforecast.targets.standard_plan import tumor_core
from gliomaforecast.targets.volumes import build_targets

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CASE = REPO / "Resources" / "SampleData" / "sample_patient" / "case.json"
EXACT = dict(rtol=0.0, atol=1e-9)


def _oblique(shape=(10, 18, 20), spacing=(4.0, 1.1, 0.9)) -> Grid:
    rot = Rotation.from_euler("xyz", [10, -20, 35], degrees=True).as_matrix()
    return Grid(shape, spacing, (-12.345, 67.89, -3.21), tuple(rot.ravel()))


def _ball(grid: Grid, center_zyx, radius_mm: float) -> np.ndarray:
    axes = [(np.arange(n) - c) * s for n, c, s in zip(grid.shape, center_zyx, grid.spacing)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return zz**2 + yy**2 + xx**2 <= radius_mm**2


@pytest.fixture
def scene():
    return headless_scene()


@pytest.fixture
def synthetic_case(tmp_path: Path) -> tuple[Path, Grid]:
    """Three scans (days 0, 40, 95) of a growing ball on an oblique anisotropic grid, RT from day 21, a brain mask
    that cuts one side, and a dose map."""
    grid = _oblique()
    rng = np.random.default_rng(1)
    brain = np.ones(grid.shape, bool)
    brain[:, :, :4] = False
    tps = []
    for i, (day, radius) in enumerate(((0, 4.0), (40, 5.5), (95, 7.0))):
        write_image(tmp_path / f"d{i}_flair.nii.gz", rng.normal(100, 5, grid.shape).astype(np.float32), grid)
        write_image(tmp_path / f"d{i}_gtv.nii.gz", _ball(grid, (5, 9, 8), radius).astype(np.uint8), grid)
        tps.append({"day": day, "images": {"flair": f"d{i}_flair.nii.gz"}, "gtv": f"d{i}_gtv.nii.gz"})
    write_image(tmp_path / "brain.nii.gz", brain.astype(np.uint8), grid)
    write_image(tmp_path / "dose.nii.gz", np.full(grid.shape, 2.0, np.float32), grid)
    manifest = {"schema": "gliomaforecast.case/1", "patient_id": "SYN-1", "rt_start_day": 21, "timepoints": tps,
                "brain_mask": "brain.nii.gz", "dose": "dose.nii.gz"}
    (tmp_path / "case.json").write_text(json.dumps(manifest))
    return tmp_path / "case.json", grid


# --- adapters --------------------------------------------------------------------------------------

def test_volume_round_trip_keeps_voxels_and_oblique_geometry(scene):
    grid = _oblique()
    array = np.random.default_rng(0).random(grid.shape).astype(np.float32)
    node = adapters.add_volume(scene, array, grid, "v")
    back, back_grid = adapters.volume_to_array_and_grid(node)
    assert node.IsA("vtkMRMLScalarVolumeNode")
    assert back_grid.shape == grid.shape and back_grid.same_as(grid, **EXACT)
    assert back.dtype == np.float32 and np.array_equal(back, array)


def test_ijk_to_ras_matches_itk_physical_points():
    from gliomaforecast.geometry import to_sitk

    grid = _oblique()
    image = to_sitk(np.zeros(grid.shape, np.uint8), grid)
    matrix = adapters.ijk_to_ras_from_grid(grid)
    for ijk in [(0, 0, 0), (3, 7, 2), (19, 17, 9)]:
        lps = np.array(image.TransformIndexToPhysicalPoint(ijk))
        ras = matrix @ np.array([*ijk, 1.0])
        np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-9)


def test_segment_round_trip_and_reference_geometry_without_volume(scene):
    grid = _oblique()
    mask = _ball(grid, (5, 9, 8), 6.0)
    volume = adapters.add_volume(scene, np.zeros(grid.shape, np.int16), grid, "ref")
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "s")
    seg.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    sid = adapters.add_segment_from_mask(seg, mask, grid, "GTV")
    back, back_grid = adapters.segment_mask(seg, sid)
    assert np.array_equal(back, mask) and back_grid.same_as(grid, **EXACT)
    # The same segment in a segmentation that only stores the geometry string (no reference volume node).
    seg.SetNodeReferenceID(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole(), None)
    back2, grid2 = adapters.segment_mask(seg, "GTV")
    assert np.array_equal(back2, mask) and grid2.same_as(grid, atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="no segment 'CTV'"):
        adapters.segment_mask(seg, "CTV")


def test_timepoint_day_from_attribute_or_name(scene):
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "GTV day 95")
    assert timepointDay(node) == 95.0
    node.SetName("d040_gtv")
    assert timepointDay(node) == 40.0
    node.SetAttribute("GliomaForecast.Day", "12.5")
    assert timepointDay(node) == 12.5
    assert timepointDay(scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "tumor")) is None


# --- console methods on a loaded case --------------------------------------------------------------

@pytest.fixture
def loaded(scene, synthetic_case) -> tuple[LoadedCase, Grid]:
    path, grid = synthetic_case
    return ForecastLogic().loadCase(path), grid


def test_load_case_builds_named_nodes_in_a_study(loaded, scene):
    case, grid = loaded
    assert case.days == [0.0, 40.0, 95.0] and case.rtStartDay == 21
    assert case.flair[95.0].GetName() == "FLAIR day 95" and case.gtv[40.0].GetName() == "GTV day 40"
    assert adapters.grid_from_volume(case.flair[0.0]).same_as(grid, atol=1e-6, rtol=0)
    assert case.brainMask.IsA("vtkMRMLLabelMapVolumeNode") and case.dose.GetName() == "RT dose (Gy)"
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    for node in (case.flair[0.0], case.gtv[95.0], case.brainMask, case.dose):
        assert sh.GetItemParent(sh.GetItemByDataNode(node)) == case.studyItemId
    assert sh.GetItemName(sh.GetItemParent(case.studyItemId)) == "SYN-1"


def test_probability_map_equals_core_on_the_input_geometry(loaded, scene):
    case, _ = loaded
    seg = case.gtv[95.0]
    node = ForecastLogic().probabilityMap(seg, "GTV", beta=0.2, mu=10.0, day=95)
    mask, grid = adapters.segment_mask(seg, "GTV")
    expected = sdf.tumor_probability(mask, grid.spacing, beta=0.2, mu=10.0)
    array, out_grid = adapters.volume_to_array_and_grid(node)
    assert node.IsA("vtkMRMLScalarVolumeNode") and node.GetName() == "GTV probability day 95"
    assert out_grid.same_as(adapters.grid_from_volume(case.flair[95.0]), **EXACT)
    assert np.array_equal(array, expected)
    display = node.GetDisplayNode()
    assert display.GetColorNode().GetName() == conventions.PROBABILITY_COLOR_TABLE
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == (0.0, 1.0)
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    assert sh.GetItemParent(sh.GetItemByDataNode(node)) == case.studyItemId


def test_target_volumes_match_core_and_export_bit_exactly(loaded, scene, tmp_path):
    case, _ = loaded
    logic = ForecastLogic()
    seg = case.gtv[95.0]
    score = logic.probabilityMap(case.gtv[40.0], "GTV", mu=5.0)
    reports = []
    out = logic.targetVolumes(seg, "GTV", scoreVolume=score, marginMm=8.0, brainMask=case.brainMask, day=95,
                              progress=lambda f, m: reports.append(f))
    gtv, grid = adapters.segment_mask(seg, "GTV")
    brain = adapters.array_from_volume(case.brainMask) > 0
    standard = ctv.standard_ctv(gtv, grid.spacing, margin_mm=8.0, brain_mask=brain)
    forecast = ctv.isovolumetric_ctv(adapters.array_from_volume(score), int(standard.sum()), grid.spacing, gtv=gtv,
                                     brain_mask=brain)
    assert out.IsA("vtkMRMLSegmentationNode") and out.GetName() == "GTV targets day 95"
    segmentation = out.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == ["GTV", "CTV standard", "CTV forecast"]
    assert adapters.reference_volume(out) is case.flair[95.0]
    expected = {"GTV": gtv, "CTV standard": standard, "CTV forecast": forecast}
    for name, mask in expected.items():
        got, got_grid = adapters.segment_mask(out, name)
        assert got_grid.same_as(grid, **EXACT) and np.array_equal(got, mask), name
    assert standard.sum() == forecast.sum() and not np.array_equal(standard, forecast)
    assert reports[0] == 0.0 and reports[-1] == 1.0 and reports == sorted(reports)
    tag = vtk.mutable("")
    segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("CTV forecast"))
    assert segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag) and "228792002" in str(tag)
    assert tuple(round(c, 6) for c in segment.GetColor()) == conventions.SEGMENT_COLORS["CTV forecast"]

    # Written by Slicer's storage node, read back by the core reader and by the storage node: bit-exact.
    path = tmp_path / "targets.seg.nrrd"
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.WriteData(out)
    segments, file_grid = read_segmentation(path)
    assert list(segments) == names and file_grid.same_as(grid, atol=1e-9, rtol=0)
    for name, mask in expected.items():
        assert segments[name].dtype == bool and np.array_equal(segments[name], mask), name
    again = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "again")
    reader = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    reader.SetFileName(str(path))
    assert reader.ReadData(again)
    again.SetReferenceImageGeometryParameterFromVolumeNode(case.flair[95.0])
    for name, mask in expected.items():
        assert np.array_equal(adapters.segment_mask(again, name)[0], mask), name


def test_target_volumes_barrier_and_default_score(loaded):
    case, _ = loaded
    seg = case.gtv[40.0]
    gtv, grid = adapters.segment_mask(seg, "GTV")
    barrier = np.zeros(grid.shape, bool)
    barrier[:, 13:15, :] = True
    barrier &= ~gtv
    barrier_node = adapters.add_volume(slicer.mrmlScene, barrier.astype(np.uint8), grid, "falx",
                                       "vtkMRMLLabelMapVolumeNode")
    out = ForecastLogic().targetVolumes(seg, "GTV", marginMm=10.0, barrier=barrier_node)
    standard = ctv.standard_ctv(gtv, grid.spacing, margin_mm=10.0, barrier=barrier)
    targets = build_targets(gtv, grid.spacing, 10.0, barrier=barrier)  # the rule every path follows (issue 17)
    assert np.array_equal(targets.standard, standard)  # a ball GTV: no cavity, no hole to fill
    assert np.array_equal(adapters.segment_mask(out, "CTV standard")[0], standard)
    forecast = adapters.segment_mask(out, "CTV forecast")[0]
    assert np.array_equal(forecast, targets.forecast) and not (forecast & barrier).any()  # off the barrier too


def test_cancel_leaves_no_output_nodes(loaded, scene):
    case, _ = loaded
    cancel = threading.Event()
    before = scene.GetNumberOfNodes()

    def progress(fraction, message):
        if fraction >= 0.2:
            cancel.set()

    with pytest.raises(Cancelled):
        ForecastLogic().targetVolumes(case.gtv[95.0], "GTV", progress=progress, cancel=cancel)
    assert scene.GetNumberOfNodes() == before


def test_fit_growth_table_and_chart_match_core(loaded, scene):
    case, _ = loaded
    table, chart = ForecastLogic().fitGrowth(case.timepoints(), rtStartDay=case.rtStartDay, nBootstrap=8, seed=3)
    masks = [adapters.segment_mask(case.gtv[d], "GTV") for d in case.days]
    volumes = [float(mask.sum()) * grid.voxel_volume_ml for mask, grid in masks]
    fit = growth.fit_growth(np.array(case.days), np.array(volumes), rt_start_day=21, n_bootstrap=8, seed=3)
    assert table.IsA("vtkMRMLTableNode") and chart.IsA("vtkMRMLPlotChartNode")
    days = slicer.util.arrayFromTableColumn(table, "Day")
    median, lower, upper = fit.predict(days)
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(table, "Median (mL)"), median, rtol=1e-12)
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(table, "Lower 2.5% (mL)"), lower, rtol=1e-12)
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(table, "Upper 97.5% (mL)"), upper, rtol=1e-12)
    observed = slicer.util.arrayFromTableColumn(table, "Observed (mL)")
    np.testing.assert_allclose(observed[np.isin(days, case.days)], volumes, rtol=1e-12)
    assert np.isnan(observed[~np.isin(days, case.days)]).all()
    assert chart.GetNumberOfPlotSeriesNodes() == 4
    assert table.GetName() == "Growth fit (days 0-95)"


def test_grid_transform_is_the_itk_pull_map_in_ras(scene):
    from gliomaforecast.deformation import to_physical

    grid = _oblique(shape=(4, 6, 5))
    rng = np.random.default_rng(2)
    displacement = rng.normal(0, 2.0, grid.shape + (3,)).astype(np.float32)
    lps = to_physical(displacement, grid)
    node = adapters.add_grid_transform(scene, lps, grid, "field")
    assert node.IsA("vtkMRMLGridTransformNode")
    np.testing.assert_allclose(slicer.util.arrayFromGridTransform(node), lps * [-1, -1, 1], rtol=0, atol=1e-6)
    transform = node.GetTransformFromParent()
    matrix = adapters.ijk_to_ras_from_grid(grid)
    for zyx in [(1, 2, 3), (2, 4, 1)]:
        ras = (matrix @ np.array([*zyx[::-1], 1.0]))[:3]
        moved = np.array(transform.TransformPoint(*ras))
        np.testing.assert_allclose(moved - ras, lps[zyx] * [-1, -1, 1], atol=1e-4)


def test_forecast_nodes_match_the_core_forecast(loaded, scene, synthetic_case):
    from gliomaforecast.forecast import run_forecast

    case, _ = loaded
    timepoints = [(d, case.flair[d], case.gtv[d], "GTV") for d in case.days]
    nodes = ForecastLogic().forecast(timepoints, 150, rtStartDay=21, brainMask=case.brainMask, dose=case.dose,
                                     forecaster="persistence", nBootstrap=4, marginMm=8.0)
    expected = run_forecast(synthetic_case[0], 150, "persistence", n_bootstrap=4, margin_mm=8.0)
    grid = adapters.grid_from_volume(case.flair[95.0])
    for node, array in ((nodes.probability, expected.output.probability),
                        (nodes.uncertainty, expected.output.uncertainty), (nodes.flair, expected.output.image)):
        got, got_grid = adapters.volume_to_array_and_grid(node)
        assert got_grid.same_as(grid, **EXACT)
        np.testing.assert_allclose(got, array, rtol=1e-6, atol=1e-6)
    assert nodes.probability.GetName() == "Forecast probability day 150"
    assert nodes.flair.GetName() == "Warped last FLAIR day 150"  # issue 17 item 5: a warped image, not a forecast
    # persistence predicts no field: no (fake, all-zero) grid transform is added
    assert nodes.displacement is None and expected.output.displacement is None
    assert scene.GetNodesByClass("vtkMRMLGridTransformNode").GetNumberOfItems() == 0
    for name, mask in (("GTV", expected.gtv), ("CTV standard", expected.ctv_standard),
                       ("CTV forecast", expected.ctv_forecast)):
        got, got_grid = adapters.segment_mask(nodes.targets, name)
        assert got_grid.same_as(grid, **EXACT) and np.array_equal(got, mask), name
    assert adapters.reference_volume(nodes.targets) is case.flair[95.0]
    assert slicer.util.arrayFromTableColumn(nodes.table, "Day")[-1] == 150.0
    assert nodes.chart.IsA("vtkMRMLPlotChartNode")


# --- the sample patient ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample():
    from gliomaforecast.io.case import load_case

    scene = headless_scene()
    return scene, ForecastLogic(scene).loadCase(SAMPLE_CASE), load_case(SAMPLE_CASE)


def test_sample_patient_console_methods_match_the_core(sample, tmp_path):
    from gliomaforecast.growth import burden_from_case, fit_growth

    scene, loaded, case = sample
    logic = ForecastLogic(scene)
    last_tp = case.timepoints[-1]
    day = float(last_tp.day)
    seg = loaded.gtv[day]
    grid = adapters.grid_from_volume(loaded.flair[day])
    assert grid.same_as(case.grid) and grid.shape == case.grid.shape
    gtv = case.gtv(last_tp)
    assert np.array_equal(adapters.segment_mask(seg, "GTV")[0], gtv)

    probability = logic.probabilityMap(seg, "GTV", day=day)
    np.testing.assert_array_equal(adapters.array_from_volume(probability), sdf.tumor_probability(gtv, grid.spacing))
    assert adapters.grid_from_volume(probability).same_as(grid, **EXACT)

    table, chart = logic.fitGrowth(loaded.timepoints(), rtStartDay=loaded.rtStartDay, nBootstrap=10)
    days, volumes = burden_from_case(case)
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(table, "Observed (mL)")[
        np.isin(slicer.util.arrayFromTableColumn(table, "Day"), days)], volumes, rtol=1e-9)
    fit = fit_growth(days, volumes, case.rt_start_day, n_bootstrap=10)
    curve_days = slicer.util.arrayFromTableColumn(table, "Day")
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(table, "Median (mL)"), fit.predict(curve_days)[0],
                               rtol=1e-6)

    targets = logic.targetVolumes(seg, "GTV", scoreVolume=probability, brainMask=loaded.brainMask, day=day,
                                  plan="flair")
    brain, cavity = case.brain_mask(), case.labels(last_tp) == 4
    rule = build_targets(gtv, grid.spacing, score=sdf.tumor_probability(gtv, grid.spacing), cavity=cavity,
                         brain_mask=brain)  # the flair plan: the GTV-based plan, + the resection cavity
    standard, forecast = rule.standard, rule.forecast  # the issue-17 rule: margin CTV with its holes filled
    assert standard[ctv.standard_ctv(gtv | cavity, grid.spacing, brain_mask=brain)].all()
    assert (targets.GetAttribute("GliomaForecast.Plan"), targets.GetAttribute("GliomaForecast.PlanSeed")) == (
        "flair", "gtv+cavity")
    path = tmp_path / "sample_targets.seg.nrrd"
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.WriteData(targets)
    segments, file_grid = read_segmentation(path)
    assert file_grid.same_as(grid, atol=1e-9, rtol=0)
    for name, mask in (("GTV", gtv), ("CTV standard", standard), ("CTV forecast", forecast)):
        assert np.array_equal(segments[name], mask), name
        assert np.array_equal(adapters.segment_mask(targets, name)[0], mask), name


def test_sample_patient_forecast_matches_run_forecast(sample):
    from gliomaforecast.forecast import run_forecast

    scene, loaded, case = sample
    timepoints = [(d, loaded.flair[d], loaded.gtv[d], "GTV") for d in loaded.days]
    nodes = ForecastLogic(scene).forecast(timepoints, 450, rtStartDay=loaded.rtStartDay, brainMask=loaded.brainMask,
                                          dose=loaded.dose, forecaster="persistence", nBootstrap=10)
    expected = run_forecast(case, 450, "persistence", n_bootstrap=10)
    np.testing.assert_array_equal(adapters.array_from_volume(nodes.probability), expected.output.probability)
    for name, mask in (("CTV standard", expected.ctv_standard), ("CTV forecast", expected.ctv_forecast)):
        assert np.array_equal(adapters.segment_mask(nodes.targets, name)[0], mask), name


def test_sample_patient_evolution_forecast_matches_run_forecast(sample):
    from gliomaforecast.deformation import to_physical
    from gliomaforecast.forecast import run_forecast

    scene, loaded, case = sample
    timepoints = [(d, loaded.flair[d], loaded.gtv[d], "GTV") for d in loaded.days]
    nodes = ForecastLogic(scene).forecast(timepoints, 450, rtStartDay=loaded.rtStartDay, brainMask=loaded.brainMask,
                                          dose=loaded.dose, forecaster="evolution", samples=2, nBootstrap=10)
    expected = run_forecast(case, 450, "evolution", samples=2, n_bootstrap=10)
    np.testing.assert_allclose(adapters.array_from_volume(nodes.probability), expected.output.probability, atol=1e-6)
    lps = to_physical(expected.output.displacement, case.grid)
    np.testing.assert_allclose(slicer.util.arrayFromGridTransform(nodes.displacement), lps * [-1, -1, 1], atol=1e-4)
    assert np.array_equal(adapters.segment_mask(nodes.targets, "CTV forecast")[0], expected.ctv_forecast)


def test_sample_patient_default_forecast_reads_t1ce_and_matches_run_forecast(sample):
    """The default forecaster (multi-task diffusion) reads each scan's T1CE from the scene (loadCase tags it with the
    day and the modality) and gives the core's forecast of the manifest; without T1CE volumes it names the field."""
    from gliomaforecast.forecast import run_forecast
    from gliomaforecast.forecasters import DEFAULT_FORECASTER

    assert DEFAULT_FORECASTER == "multitask-diffusion"
    scene, loaded, case = sample
    logic = ForecastLogic(scene)
    days = loaded.days[-2:]
    assert {d: sorted(m) for d, m in logic.scanImages(days).items()} == {d: ["t1", "t1ce", "t2"] for d in days}
    assert logic.scanImages(days)[days[-1]]["t1ce"] is loaded.images[days[-1]]["t1ce"]
    timepoints = [(d, loaded.flair[d], loaded.gtv[d], "GTV") for d in loaded.days]
    nodes = logic.forecast(timepoints, 351, rtStartDay=loaded.rtStartDay, brainMask=loaded.brainMask,
                           dose=loaded.dose, samples=2, nBootstrap=10)
    expected = run_forecast(case, 351, samples=2, n_bootstrap=10)
    np.testing.assert_allclose(adapters.array_from_volume(nodes.probability), expected.output.probability, atol=1e-6)
    np.testing.assert_allclose(adapters.array_from_volume(nodes.flair), expected.output.image, rtol=1e-5, atol=1e-3)
    assert nodes.flair.GetName().startswith("Predicted FLAIR") and nodes.displacement is None
    assert np.array_equal(adapters.segment_mask(nodes.targets, "CTV forecast")[0], expected.ctv_forecast)
    with pytest.raises(Exception, match=r"images\.t1ce.*needs T1CE"):
        logic.forecast(timepoints, 351, rtStartDay=loaded.rtStartDay, brainMask=loaded.brainMask, dose=loaded.dose,
                       samples=2, nBootstrap=10, images={})


# --- the standard plan's planning convention (issue 27) ---------------------------------------------------

def _segment_names(node) -> list:
    segmentation = node.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


def test_load_case_adds_the_brats_label_segments(sample):
    scene, loaded, case = sample
    for tp in case.timepoints:
        seg, labels = loaded.gtv[float(tp.day)], case.labels(tp)
        present = [label for label in (1, 2, 3, 4) if (labels == label).any()]
        assert _segment_names(seg) == ["GTV"] + [conventions.LABEL_SEGMENTS[label] for label in present]
        for label in present:
            name = conventions.LABEL_SEGMENTS[label]
            mask, grid = adapters.segment_mask(seg, name)
            assert grid.same_as(case.grid) and np.array_equal(mask, labels == label), name
            segment = seg.GetSegmentation().GetSegment(seg.GetSegmentation().GetSegmentIdBySegmentName(name))
            assert tuple(round(c, 6) for c in segment.GetColor()) == conventions.LABEL_COLORS[name]
        rebuilt = ForecastLogic.labelMap(seg)
        assert rebuilt.dtype == np.int16 and np.array_equal(rebuilt, labels)  # the BraTS map, voxel for voxel
    last = loaded.gtv[loaded.days[-1]].GetSegmentation()
    assert set(_segment_names(loaded.gtv[loaded.days[-1]])) == {"GTV", *conventions.LABEL_SEGMENTS.values()}
    tag = vtk.mutable("")
    assert last.GetSegment(last.GetSegmentIdBySegmentName("Necrosis")).GetTag(
        slicer.vtkSegment.GetTerminologyEntryTagName(), tag) and "SCT^6574001^Necrosis" in str(tag)


def test_a_case_without_labels_loads_only_the_gtv_segment(loaded):
    case, _ = loaded
    assert all(_segment_names(case.gtv[day]) == ["GTV"] for day in case.days)
    assert ForecastLogic.labelMap(case.gtv[95.0]) is None


def test_sample_target_volumes_follow_the_planning_convention(sample):
    """auto on the sample's last scan (BraTS labels with a core and a cavity) is the estro-eano plan: both CTVs grow
    from the tumour core + cavity, voxel for voxel the core's rule; it is smaller than the flair plan of the same
    scan, which grows from the whole GTV + cavity."""
    scene, loaded, case = sample
    logic = ForecastLogic(scene)
    last_tp = case.timepoints[-1]
    seg, labels, brain = loaded.gtv[float(last_tp.day)], case.labels(last_tp), case.brain_mask()
    gtv, spacing = case.gtv(last_tp), case.grid.spacing
    auto = logic.targetVolumes(seg, "GTV", brainMask=loaded.brainMask)
    expected = build_targets(tumor_core(labels), spacing, cavity=labels == 4, brain_mask=brain)
    masks = {name: adapters.segment_mask(auto, name)[0] for name in ("GTV", "CTV standard", "CTV forecast")}
    assert np.array_equal(masks["GTV"], gtv)  # the GTV segment stays the GTV
    assert np.array_equal(masks["CTV standard"], expected.standard)
    assert np.array_equal(masks["CTV forecast"], expected.forecast)
    assert auto.GetAttribute("GliomaForecast.Plan") == "estro-eano"
    assert auto.GetAttribute("GliomaForecast.PlanSeed") == "core+cavity"
    assert auto.GetAttribute("GliomaForecast.PlanWarning") is None
    assert auto.GetAttribute("GliomaForecast.Score").startswith("core+cavity probability")  # the default score

    flair = logic.targetVolumes(seg, "GTV", brainMask=loaded.brainMask, plan="flair")
    gtv_plan = build_targets(gtv, spacing, cavity=labels == 4, brain_mask=brain)
    flair_standard = adapters.segment_mask(flair, "CTV standard")[0]
    assert np.array_equal(flair_standard, gtv_plan.standard)
    assert np.array_equal(adapters.segment_mask(flair, "CTV forecast")[0], gtv_plan.forecast)
    assert masks["CTV standard"].sum() < flair_standard.sum()  # edema is not part of the estro-eano seed

    explicit = logic.targetVolumes(seg, "GTV", brainMask=loaded.brainMask, plan="estro-eano")
    assert np.array_equal(adapters.segment_mask(explicit, "CTV standard")[0], expected.standard)


def test_estro_eano_without_label_segments_is_a_one_line_error(sample):
    scene, loaded, case = sample
    logic = ForecastLogic(scene)
    last_tp = case.timepoints[-1]
    flair = loaded.flair[float(last_tp.day)]
    gtv_only = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "GTV only")
    gtv_only.CreateDefaultDisplayNodes()
    gtv_only.SetReferenceImageGeometryParameterFromVolumeNode(flair)
    adapters.add_segment_from_mask(gtv_only, case.gtv(last_tp), case.grid, "GTV")
    before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError) as raised:
        logic.targetVolumes(gtv_only, "GTV", brainMask=loaded.brainMask, plan="estro-eano")
    message = str(raised.value)
    assert "\n" not in message and message.startswith("segmentation 'GTV only'")
    assert "no BraTS labels" in message and "flair" in message
    assert scene.GetNumberOfNodes() == before
    # auto falls back to the flair plan and says why
    out = logic.targetVolumes(gtv_only, "GTV", brainMask=loaded.brainMask)
    assert out.GetAttribute("GliomaForecast.Plan") == "flair"
    assert "no BraTS labels" in out.GetAttribute("GliomaForecast.PlanWarning")
    # a user's own segmentation: a "Resection cavity" segment drawn beside the GTV is a label map (cavity only)
    cavity = case.labels(last_tp) == 4
    adapters.add_segment_from_mask(gtv_only, cavity, case.grid, "Resection cavity")
    assert np.array_equal(ForecastLogic.labelMap(gtv_only), np.where(cavity, 4, 0).astype(np.int16))
    drawn = logic.targetVolumes(gtv_only, "GTV", brainMask=loaded.brainMask, plan="estro-eano")
    expected = build_targets(np.zeros(case.grid.shape, bool), case.grid.spacing, cavity=cavity,
                             brain_mask=case.brain_mask()).standard
    assert np.array_equal(adapters.segment_mask(drawn, "CTV standard")[0], expected)


def test_sample_forecast_with_the_estro_eano_plan(sample):
    scene, loaded, case = sample
    last_tp = case.timepoints[-1]
    labels = case.labels(last_tp)
    timepoints = [(d, loaded.flair[d], loaded.gtv[d], "GTV") for d in loaded.days]
    nodes = ForecastLogic(scene).forecast(timepoints, 450, rtStartDay=loaded.rtStartDay, brainMask=loaded.brainMask,
                                          forecaster="persistence", nBootstrap=4, plan="estro-eano")
    core_plan = build_targets(tumor_core(labels), case.grid.spacing, cavity=labels == 4, brain_mask=case.brain_mask())
    assert np.array_equal(adapters.segment_mask(nodes.targets, "CTV standard")[0], core_plan.standard)
    assert np.array_equal(adapters.segment_mask(nodes.targets, "GTV")[0], case.gtv(last_tp))
    assert nodes.targets.GetAttribute("GliomaForecast.Plan") == "estro-eano"
    assert nodes.targets.GetAttribute("GliomaForecast.PlanSeed") == standard_plan.SEED_NAMES["estro-eano"]
    assert not any("flair convention" in note for note in nodes.notes) and nodes.warnings == []


def test_forecast_auto_without_labels_notes_the_flair_fallback(loaded):
    case, _ = loaded
    timepoints = [(d, case.flair[d], case.gtv[d], "GTV") for d in case.days]
    nodes = ForecastLogic().forecast(timepoints, 150, rtStartDay=21, brainMask=case.brainMask,
                                     forecaster="persistence", nBootstrap=4, marginMm=8.0)
    warning = nodes.targets.GetAttribute("GliomaForecast.PlanWarning")
    assert nodes.targets.GetAttribute("GliomaForecast.Plan") == "flair" and "no BraTS labels" in warning
    assert nodes.notes[-1] == warning and nodes.warnings == [warning]
    with pytest.raises(ValueError, match=r"^segmentation 'GTV day 95' \(BraTS labels: .*estro-eano"):
        ForecastLogic().forecastJob(timepoints, 150, forecaster="persistence", plan="estro-eano")


def test_forecast_inputs_unlike_the_training_scans_are_a_panel_warning(loaded, tmp_path, monkeypatch):
    """A guarded forecaster (persistence underneath) whose reference says 1 mm scans: the 2 mm scans are flagged and
    the line is among the warnings the panel shows."""
    import dataclasses
    import json

    from gliomaforecast.forecasters import registry
    from gliomaforecast.input_shift import SCHEMA

    case, _ = loaded
    guarded = dataclasses.replace(registry.entry("persistence"), name="guarded", input_reference="ref.json")
    monkeypatch.setattr(registry, "REGISTRY", (*registry.REGISTRY, guarded))
    monkeypatch.setenv("GLIOMAFORECAST_MODELS_DIR", str(tmp_path))
    (tmp_path / "ref.json").write_text(json.dumps(
        {"schema": SCHEMA, "features": {"slice_mm": {"median": 1.0, "spread": 0.1}}, "threshold": 3.0}))
    timepoints = [(d, case.flair[d], case.gtv[d], "GTV") for d in case.days]
    nodes = ForecastLogic().forecast(timepoints, 150, rtStartDay=21, brainMask=case.brainMask, forecaster="guarded",
                                     nBootstrap=4, marginMm=8.0)
    assert nodes.warnings[-1].startswith("inputs unlike the scans guarded was trained on: out-of-distribution score ")
    assert "(slice_mm is +" in nodes.warnings[-1]
