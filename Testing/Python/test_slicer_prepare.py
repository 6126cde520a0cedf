"""The panel's "Prepare" (issue 30, item 4), headless on the slicer-core wheel: two scans of the sample patient, the
later one moved by a known rigid motion onto its own grid, brought back onto the planning grid by
ForecastLogic.prepare; the transform nodes are checked in RAS against the motion, the outputs keep the planning
geometry, a derived brain mask matches the sample's, and a scan of noise is refused with its quality stated."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

import test_slicer_module as module_tests
from conftest import SAMPLE_CASE
from gliomaforecast.errors import InputError
from gliomaforecast.evaluation import dice
from gliomaforecast.geometry import Grid, resample_to
from gliomaforecast.io.case import load_case
from gliomaforecast.preparation.motion import motion_size, moved_session, random_rigid_motion
from gliomaforecast.preparation.registration import target_registration_error
from GliomaForecastLib import adapters, compute, panel
from GliomaForecastLib.logic import DAY_ATTRIBUTE, MODALITY_ATTRIBUTE, ForecastLogic
from GliomaForecastLib.progress import Cancelled
from GliomaForecastLib.scene import headless_scene

C = np.diag([-1.0, -1.0, 1.0])  # LPS <-> RAS
gf_module = module_tests.module  # GliomaForecast.py imported with stand-ins for what the slicer-core wheel lacks


@pytest.fixture(scope="module")
def sample():
    """The sample's planning scan (day 0) and its day-92 scan moved by a known rigid motion (all volumes)."""
    case = load_case(SAMPLE_CASE)
    motion = random_rigid_motion(np.random.default_rng(22), case.grid)
    degrees, shift_mm = motion_size(motion, case.grid)
    assert degrees > 5.0 and shift_mm > 10.0  # a motion worth recovering: 6.5 degrees, 16.7 mm at the centre
    return case, motion


def _add_scan(logic: ForecastLogic, case, index: int, motion: sitk.Transform | None, noise: bool = False):
    """A scan as the panel holds it: one volume per sequence (own grid), a GTV segmentation with the BraTS label
    segments referencing its FLAIR. Returns (day, {modality: volume}, segmentation)."""
    scene, tp = logic.scene, case.timepoints[index]
    day, label = float(tp.day), f" day {tp.day:g}"
    rng = np.random.default_rng(index)

    def moved(array, is_label):
        return (array, case.grid) if motion is None else moved_session(array, case.grid, motion, label=is_label)

    volumes = {}
    for modality in tp.images:
        array, grid = moved(case.image(tp, modality), False)
        if noise:
            array = rng.normal(100.0, 30.0, array.shape).astype(np.float32)
        node = adapters.add_volume(scene, np.asarray(array, np.float32), grid, f"{modality.upper()}{label}")
        node.SetAttribute(DAY_ATTRIBUTE, repr(day))
        node.SetAttribute(MODALITY_ATTRIBUTE, modality)
        volumes[modality] = node
    gtv, grid = moved(case.gtv(tp).astype(np.uint8), True)
    labels, _ = moved(case.labels(tp), True)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"GTV{label}")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volumes["flair"])
    adapters.add_segment_from_mask(segmentation, gtv > 0, grid, "GTV")
    logic._addLabelSegments(segmentation, labels, grid)
    return day, volumes, segmentation


def _anatomy(logic: ForecastLogic, case) -> tuple:
    """The sample's brain mask and tissue maps as nodes on the planning grid."""
    brain = adapters.add_volume(
        logic.scene, case.brain_mask().astype(np.uint8), case.grid, "Brain mask", "vtkMRMLLabelMapVolumeNode"
    )
    tissue = {k: adapters.add_volume(logic.scene, case.tissue(k), case.grid, k.upper()) for k in ("wm", "gm", "csf")}
    return brain, tissue


@pytest.fixture(scope="module")
def prepared(sample):
    """The two scans prepared with the sample's own brain mask and tissue maps (no derivation), and the dose."""
    case, motion = sample
    headless_scene()
    logic = ForecastLogic()
    scans = [_add_scan(logic, case, 0, None), _add_scan(logic, case, 1, motion)]
    brain, tissue = _anatomy(logic, case)
    dose = adapters.add_volume(logic.scene, case.dose().astype(np.float32), case.grid, "RT dose (Gy)")
    reports = []
    nodes = logic.prepare(
        [(day, images, seg) for day, images, seg in reversed(scans)],  # any order: sorted by day
        brainMask=brain,
        tissue=tissue,
        dose=dose,
        progress=lambda f, m: reports.append((f, m)),
    )
    return logic, scans, nodes, reports


def test_outputs_keep_the_planning_geometry_exactly(sample, prepared):
    case, _ = sample
    logic, scans, nodes, _ = prepared
    planning = adapters.ijk_to_ras_from_grid(adapters.grid_from_volume(scans[0][1]["flair"]))
    outputs = [*(v for day in nodes.days for v in nodes.images[day].values()), nodes.brainMask, nodes.dose]
    outputs += list(nodes.tissue.values())
    assert len(outputs) == 2 * 4 + 1 + 1 + 3
    for node in outputs:
        grid = adapters.grid_from_volume(node)
        assert grid.shape == case.grid.shape, node.GetName()
        assert np.array_equal(adapters.ijk_to_ras_from_grid(grid), planning), node.GetName()
        assert grid.same_as(case.grid, atol=1e-9, rtol=0), node.GetName()
    assert nodes.days == [0.0, 92.0]
    assert nodes.images[92.0]["t1"].GetName() == "T1 day 92 (prepared)"
    assert nodes.images[92.0]["t1"].GetAttribute(DAY_ATTRIBUTE) == "92.0"
    assert nodes.images[92.0]["t1"].GetAttribute(MODALITY_ATTRIBUTE) == "t1"
    assert nodes.brainMask.IsA("vtkMRMLLabelMapVolumeNode") and nodes.brainMask.GetName() == "Brain mask (prepared)"
    assert sorted(nodes.tissue) == ["csf", "gm", "wm"] and nodes.dose.GetName() == "RT dose (Gy) (prepared)"
    # The planning scan is on the planning grid already: its voxels are kept as they are.
    assert np.array_equal(
        adapters.array_from_volume(nodes.images[0.0]["flair"]), case.image(case.timepoints[0], "flair")
    )
    np.testing.assert_allclose(adapters.array_from_volume(nodes.dose), case.dose())
    assert nodes.provenance["brain_mask"] == {"source": "user"} and nodes.provenance["tissue"] == {"source": "user"}


def test_the_recovered_transform_matches_the_motion(sample, prepared):
    case, motion = sample
    _, _, nodes, _ = prepared
    registration = nodes.registrations[0]
    tre = target_registration_error(motion, registration.transform, case.grid, case.brain_mask())
    assert tre["median_mm"] < 0.5 and tre["max_mm"] < 1.5, tre
    assert registration.quality > 0.75 and nodes.warnings == []
    assert nodes.records()[0]["quality"] == round(registration.quality, 4)

    node = nodes.transforms[92.0]
    assert node.IsA("vtkMRMLLinearTransformNode") and node.GetName() == "Scan day 92 to planning"
    assert float(node.GetAttribute("GliomaForecast.RegistrationQuality")) == registration.quality
    # In RAS, the transform to parent maps the moved scan's point of an anatomy onto the planning scan's point of it:
    # the inverse of the motion (an original point -> its moved point).
    to_parent = node.GetTransformToParent()
    brain_points = case.grid.index_to_physical(np.argwhere(case.brain_mask())[::997])
    for lps in brain_points:
        moved_ras = C @ np.asarray(motion.TransformPoint(tuple(float(v) for v in lps)))
        back = np.asarray(to_parent.TransformPoint(tuple(float(v) for v in moved_ras)))
        assert np.linalg.norm(back - C @ lps) < 1.0, (lps, back)
    # exactly the estimated transform's inverse, in RAS; close to the motion's inverse (rotation, shift in mm)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    matrix = adapters.matrix_to_parent(node)
    np.testing.assert_allclose(
        matrix, flip @ adapters.lps_matrix(registration.transform.GetInverse()) @ flip, atol=1e-9
    )
    truth = flip @ adapters.lps_matrix(motion.GetInverse()) @ flip
    np.testing.assert_allclose(matrix[:3, :3], truth[:3, :3], atol=0.01)
    np.testing.assert_allclose(matrix[:3, 3], truth[:3, 3], atol=0.5)


def test_the_original_scan_under_its_transform_node_lines_up_with_the_planning_scan(sample, prepared):
    """Slicer's own use of the node: the moved T1 placed under it and hardened lands on the planning T1."""
    case, _ = sample
    logic, scans, nodes, _ = prepared
    moved = scans[1][1]["t1"]
    copy = adapters.add_volume(logic.scene, adapters.array_from_volume(moved), adapters.grid_from_volume(moved), "copy")
    copy.SetAndObserveTransformNodeID(nodes.transforms[92.0].GetID())
    copy.HardenTransform()
    array, grid = adapters.volume_to_array_and_grid(copy)
    logic.scene.RemoveNode(copy)
    on_planning = resample_to(array, grid, case.grid)
    brain = case.brain_mask()
    prepared_t1 = adapters.array_from_volume(nodes.images[92.0]["t1"])
    planning_t1 = case.image(case.timepoints[0], "t1")
    unmoved = resample_to(*adapters.volume_to_array_and_grid(moved), case.grid)

    def r(a, b):
        return float(np.corrcoef(a[brain], b[brain])[0, 1])

    # the same voxels as the core's resampling through the ITK transform (up to interpolation), and far closer to the
    # planning T1 than the moved scan as it lies
    assert r(on_planning, prepared_t1) > 0.999
    assert r(on_planning, planning_t1) > r(unmoved, planning_t1) + 0.2


def test_the_gtvs_and_labels_come_back_onto_the_planning_grid(sample, prepared):
    case, _ = sample
    logic, scans, nodes, _ = prepared
    assert [s.GetName() for s in nodes.segmentations()] == ["GTV day 0 (prepared)", "GTV day 92 (prepared)"]
    planning_gtv, grid = adapters.segment_mask(nodes.gtv[0.0], "GTV")
    assert grid.same_as(case.grid, atol=1e-9, rtol=0)
    assert np.array_equal(planning_gtv, case.gtv(case.timepoints[0]))
    later, _ = adapters.segment_mask(nodes.gtv[92.0], "GTV")
    assert dice(later, case.gtv(case.timepoints[1])) > 0.9
    labels = logic.labelMap(nodes.gtv[92.0])
    assert dice(labels == 2, case.labels(case.timepoints[1]) == 2) > 0.85
    assert adapters.reference_volume(nodes.gtv[92.0]) is nodes.images[92.0]["flair"]
    ml = case.grid.voxel_volume_ml
    assert nodes.gtvVolumesMl[0] == pytest.approx(case.gtv(case.timepoints[0]).sum() * ml)
    assert nodes.gtvVolumesMl[1] == pytest.approx(case.gtv(case.timepoints[1]).sum() * ml, rel=0.05)


def test_progress_names_the_scans_not_the_cores_indices(prepared):
    _, _, _, reports = prepared
    fractions = [f for f, _ in reports]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    lines = [m for _, m in reports]
    assert any(m.startswith("registering scan 2 (day 92, t1) onto the planning t1") for m in lines), lines
    assert not any("timepoints[" in m for m in lines)


def test_the_panels_scans_become_preparation_timepoints(prepared):
    logic, scans, _, _ = prepared
    day, images, seg = scans[1]
    ((got_day, got_images, got_gtv),) = logic.preparationTimepoints([(day, images["flair"], seg, "GTV")])
    assert got_day == 92.0 and got_gtv == (seg, "GTV")
    # the last added volume of a day and sequence wins: the prepared ones, once they exist
    assert sorted(got_images) == ["flair", "t1", "t1ce", "t2"] and got_images["flair"] is images["flair"]
    assert got_images["t1"].GetName() == "T1 day 92 (prepared)"


def test_cancel_stops_at_the_next_step_and_builds_nothing(sample, prepared):
    case, _ = sample
    logic, scans, _, _ = prepared
    brain, tissue = _anatomy(logic, case)
    cancel, seen = threading.Event(), []

    def progress(fraction, message):
        seen.append(message)
        cancel.set()  # Cancel pressed while the scans are read: the core stops before its first registration

    before = {logic.scene.GetNthNode(i).GetID() for i in range(logic.scene.GetNumberOfNodes())}
    with pytest.raises(Cancelled):
        logic.prepare(scans, brainMask=brain, tissue=tissue, progress=progress, cancel=cancel)
    assert seen == ["Reading the scans"]
    assert {logic.scene.GetNthNode(i).GetID() for i in range(logic.scene.GetNumberOfNodes())} == before


def test_a_scan_of_noise_is_refused_with_its_quality_stated(sample):
    case, motion = sample
    headless_scene()
    logic = ForecastLogic()
    scans = [_add_scan(logic, case, 0, None), _add_scan(logic, case, 1, motion, noise=True)]
    brain, tissue = _anatomy(logic, case)
    before = {logic.scene.GetNthNode(i).GetID() for i in range(logic.scene.GetNumberOfNodes())}
    with pytest.raises(InputError) as caught:
        logic.prepare(scans, brainMask=brain, tissue=tissue)
    after = {logic.scene.GetNthNode(i).GetID() for i in range(logic.scene.GetNumberOfNodes())}
    message = str(caught.value)
    assert "\n" not in message and "quality" in message and "below 0.6" in message, message
    assert caught.value.source == "T1 day 92" and "timepoints[" not in message, message
    assert panel.panelMessage(caught.value).startswith("T1 day 92: registration: will not register")
    assert after == before  # nothing built


def test_the_brain_mask_is_derived_when_none_is_given(sample):
    """The planning scan alone (nothing to register): the brain mask and tissue maps derived from it, from the
    template the panel chose (mni152: half the time of sri24 here; the core's tests derive from sri24)."""
    case, _ = sample
    headless_scene()
    logic = ForecastLogic()
    nodes = logic.prepare([_add_scan(logic, case, 0, None)], template="mni152")
    assert nodes.brainMask.GetName() == "Brain mask (derived)" and nodes.registrations == [] and nodes.transforms == {}
    brain = adapters.array_from_volume(nodes.brainMask) > 0
    assert dice(brain, case.brain_mask()) >= 0.95
    assert sorted(nodes.tissue) == ["csf", "gm", "wm"] and nodes.tissue["wm"].GetName() == "WM (derived)"
    assert (
        nodes.provenance["brain_mask"]["source"] == "derived" and nodes.provenance["brain_mask"]["template"] == "mni152"
    )
    assert nodes.provenance["tissue"]["derived"] == ["wm", "gm", "csf"]
    grid = adapters.grid_from_volume(nodes.brainMask)
    assert grid.same_as(case.grid, atol=1e-9, rtol=0)


def test_scan_names_replace_the_cores_indices():
    names = ({"scan": "scan 1", "flair": "FLAIR day 0"}, {"scan": "scan 2", "t1": "T1 day 92", "gtv": "GTV day 92"})
    assert compute.scan_names("timepoints[1].images.t1", names) == "T1 day 92"
    assert compute.scan_names("registering timepoints[1] (day 92)", names) == "registering scan 2 (day 92)"
    assert compute.scan_names("timepoints[0].images", names) == "scan 1"
    assert compute.scan_names("timepoints[1].gtv is empty", names) == "GTV day 92 is empty"
    assert compute.scan_names("timepoints[5].gtv", names) == "timepoints[5].gtv"
    assert compute.scan_names(None, names) is None


def test_the_panels_choices_are_the_cores():
    from gliomaforecast.preparation.prepare import TEMPLATE_DEFAULT
    from gliomaforecast.preparation.sessions import REGISTER_CHOICES
    from gliomaforecast.preparation.templates import TEMPLATES

    assert panel.REGISTER_CHOICES == REGISTER_CHOICES and panel.REGISTER_DEFAULT == "rigid"
    assert panel.TEMPLATE_CHOICES == TEMPLATES and panel.TEMPLATE_DEFAULT == TEMPLATE_DEFAULT


def test_the_transform_matrix_conversion_of_a_known_affine():
    affine = sitk.AffineTransform(3)
    affine.SetMatrix((1.1, 0.1, 0.0, -0.05, 0.9, 0.2, 0.0, 0.1, 1.0))
    affine.SetCenter((10.0, -20.0, 5.0))
    affine.SetTranslation((3.0, -4.0, 7.5))
    lps = adapters.lps_matrix(affine)
    point = np.array([12.0, 34.0, -56.0])
    np.testing.assert_allclose(lps[:3, :3] @ point + lps[:3, 3], affine.TransformPoint(tuple(point)), atol=1e-9)
    ras = adapters.ras_from_parent_matrix(affine)
    np.testing.assert_allclose(
        ras[:3, :3] @ (C @ point) + ras[:3, 3], C @ affine.TransformPoint(tuple(point)), atol=1e-9
    )
    with pytest.raises(ValueError, match="not linear"):
        adapters.lps_matrix(sitk.DisplacementFieldTransform(_field()))


def _field() -> sitk.Image:
    grid = Grid.identity((4, 4, 4), (10.0, 10.0, 10.0))
    field = np.zeros((*grid.shape, 3))
    field[1:3, 1:3, 1:3] = 5.0
    image = sitk.GetImageFromArray(field, isVector=True)
    image.SetSpacing(grid.spacing[::-1])
    return image


# --- the panel's Prepare button (GliomaForecast.py with stand-ins; the timer fired by hand) -----------------------


@pytest.fixture
def prepare_panel(gf_module, sample, monkeypatch):
    """The widget after setup() on the two sample scans (the later one moved); the panel has no tissue selector, so
    the job is given the sample's tissue maps (their derivation is tested above). Yields (widget, ui, timer, params,
    errors, layers, scans)."""
    gf, _, _ = gf_module
    case, motion = sample
    ui, errors, layers = module_tests._UI(), [], []
    monkeypatch.setattr(slicer.util, "loadUI", lambda path: module_tests._FakeWidget(), raising=False)
    monkeypatch.setattr(slicer.util, "childWidgetVariables", lambda widget: ui, raising=False)
    monkeypatch.setattr(slicer.util, "WaitCursor", contextlib.nullcontext, raising=False)
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kw: errors.append(text), raising=False)
    monkeypatch.setattr(slicer.util, "setSliceViewerLayers", lambda **kw: layers.append(kw), raising=False)
    logic = ForecastLogic()
    scans = [_add_scan(logic, case, 0, None), _add_scan(logic, case, 1, motion)]
    brain, tissue = _anatomy(logic, case)
    params = module_tests._Params(
        timepointSegmentations=[seg for _, _, seg in scans],
        gtvSegmentName="GTV",
        brainMask=brain,
        barrier=None,
        dose=None,
        referenceFlair=None,
        prepareRegistration="rigid",
        prepareTemplate="sri24",
        useRadiotherapy=True,
        rtStartDay=21.0,
        nBootstrap=10,
        forecastDay=200.0,
        forecaster="persistence",
        samples=2,
        seed=0,
        beta=0.1,
        mu=15.0,
        marginMm=6.0,
        plan="auto",
        scoreVolume=None,
    )
    monkeypatch.setattr(gf.GliomaForecastLogic, "getParameterNode", lambda self: params)
    widget = gf.GliomaForecastWidget()
    widget.setup()
    prepare_job = widget.logic.prepareJob
    widget.logic.prepareJob = lambda *args, **kwargs: prepare_job(*args, tissue=tissue, **kwargs)
    yield widget, ui, widget._timer, params, errors, layers, scans
    widget.cleanup()


def test_the_panel_prepares_its_scans_and_takes_the_prepared_ones(prepare_panel):
    widget, ui, timer, params, errors, layers, scans = prepare_panel
    assert ("clicked(bool)", widget.onPrepare) in ui.prepareButton.connected and ui.prepareButton.enabled
    widget.onPrepare()
    assert timer.active and ui.progressBar.visible and not ui.prepareButton.enabled and ui.cancelButton.enabled
    module_tests._fire_until_stopped(timer)
    assert errors == [], errors
    status = ui.statusLabel.text
    assert status.startswith("Preparing the scans: done; note: day 92: rigid (estimated) t1 onto t1, quality 0.")
    assert [s.GetName() for s in params.timepointSegmentations] == ["GTV day 0 (prepared)", "GTV day 92 (prepared)"]
    assert params.brainMask.GetName() == "Brain mask (prepared)" and params.dose is None
    flair = adapters.reference_volume(params.timepointSegmentations[0])
    assert flair.GetName() == "FLAIR day 0 (prepared)" and layers == [dict(background=flair, fit=True)]
    assert ui.prepareButton.enabled and not ui.cancelButton.enabled
    # the panel's scans now share the planning grid: the forecast reads them as they are
    planning = adapters.grid_from_volume(scans[0][1]["flair"])
    for seg in params.timepointSegmentations:
        assert adapters.grid_from_volume(adapters.reference_volume(seg)).same_as(planning, atol=1e-9, rtol=0)


def test_the_panel_shows_an_error_in_one_line_naming_its_control(prepare_panel):
    """A worker error reaches the user as one line (the refusal of a scan of noise, its quality stated, is the
    logic's test above, with its panel wording); the panel's inputs stay as they were."""
    widget, ui, timer, params, errors, layers, scans = prepare_panel
    params.prepareRegistration = "elastic"  # not a choice of the combo box: the core refuses it in the worker
    before = list(params.timepointSegmentations)
    widget.onPrepare()
    module_tests._fire_until_stopped(timer)
    assert errors == ["Preparing the scans failed: Registration: must be one of rigid, affine, none, got 'elastic'"]
    assert ui.statusLabel.text == "Preparing the scans: failed" and params.timepointSegmentations == before
    assert layers == [] and ui.prepareButton.enabled
