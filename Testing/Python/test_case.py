"""The case manifest: parsing, lazy loading, the GTV label choice and every error it reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import ball
from gliomaforecast.io.case import load_case
from gliomaforecast.errors import InputError
from gliomaforecast.geometry import Grid
from gliomaforecast.io.images import write_image


def _rewrite(path: Path, edit) -> Path:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


def test_valid_case_loads_lazily(make_case) -> None:
    path, grid = make_case()
    case = load_case(path)
    assert case.patient_id == "T-1" and case.rt_start_day == 21
    assert list(case.days) == [0, 60, 120]
    assert case._cache == {}  # nothing read yet
    gtv = case.gtv(case.timepoints[1])
    assert gtv.dtype == bool and gtv.shape == grid.shape and gtv.sum() > 0
    assert case.grid.same_as(grid)
    assert case.dose().max() == pytest.approx(2.0)
    assert case.brain_mask().all()
    assert case.image(case.timepoints[0], "flair").dtype == np.float32


def test_iso_dates_become_days(make_case) -> None:
    path, _ = make_case()

    def to_dates(d):
        for tp, date in zip(d["timepoints"], ["2024-01-10", "2024-03-10", "2024-07-01"]):
            del tp["day"]
            tp["date"] = date
        del d["rt_start_day"]
        d["rt_start_date"] = "2024-02-01"
    case = load_case(_rewrite(path, to_dates))
    assert list(case.days) == [0, 60, 173] and case.rt_start_day == 22


def test_labels_give_the_gtv_without_cavity(make_case, tmp_path: Path) -> None:
    path, grid = make_case()
    labels = np.zeros(grid.shape, np.int16)
    labels[5:7, 8:12, 8:12] = 2
    labels[6, 9:11, 9:11] = 3
    labels[2, 2, 2] = 4  # resection cavity: not tumor
    write_image(tmp_path / "seg.nii.gz", labels, grid)

    def use_labels(d):
        del d["timepoints"][0]["gtv"]
        d["timepoints"][0]["labels"] = "seg.nii.gz"
    case = load_case(_rewrite(path, use_labels))
    gtv = case.gtv(case.timepoints[0])
    assert np.array_equal(gtv, np.isin(labels, (1, 2, 3)))
    case2 = load_case(_rewrite(path, lambda d: d.update(gtv_labels=[3])))
    assert np.array_equal(case2.gtv(case2.timepoints[0]), labels == 3)


ERRORS = [
    (lambda d: d.pop("patient_id"), "patient_id: missing"),
    (lambda d: d.update(schema="other/1"), "schema: must be"),
    (lambda d: d.update(timepoints=[]), "timepoints: missing or empty"),
    (lambda d: d.update(dose_map="x"), "dose_map: unknown field \\(did you mean 'dose'\\?\\)"),
    (lambda d: d["timepoints"][1].update(gtvv="x"), r"timepoints\[1\].gtvv: unknown field \(did you mean 'gtv'\?\)"),
    (lambda d: d["timepoints"][1]["images"].update(flari="x"), r"timepoints\[1\].images.flari: unknown field"),
    (lambda d: d["timepoints"][2].update(day=30), r"timepoints\[2\].day: out of order"),
    (lambda d: d["timepoints"][2].update(day=60), r"timepoints\[2\].day: out of order"),
    (lambda d: d["timepoints"][0].pop("day"), r"timepoints\[0\]: give exactly one of 'day' or 'date'"),
    (lambda d: d["timepoints"][0].update(day="soon"), r"timepoints\[0\].day: must be a number"),
    (lambda d: (d["timepoints"][0].pop("day"), d["timepoints"][0].update(date="2024-13-01")),
     r"timepoints\[0\].date: not an ISO date"),
    (lambda d: (d["timepoints"][0].pop("day"), d["timepoints"][0].update(date="2024-01-01")),
     r"timepoints\[0\].date: mixes 'date' and 'day'"),
    (lambda d: d["timepoints"][1].pop("gtv"), r"timepoints\[1\]: needs a 'gtv' mask or a 'labels' map"),
    (lambda d: d["timepoints"][1].update(gtv="nope.nii.gz"), r"timepoints\[1\].gtv: file not found"),
    (lambda d: d.update(brain_mask="brain.mha"), r"brain_mask: file not found"),
    (lambda d: d.update(rt_start_day="x"), "rt_start_day: must be a number"),
    (lambda d: d.update(gtv_labels=[0]), "gtv_labels: must be a non-empty list"),
    (lambda d: d.update(tissue={"white": "dose.nii.gz"}), "tissue.white: unknown field"),
]


@pytest.mark.parametrize("edit,match", ERRORS)
def test_manifest_errors_name_file_and_field(make_case, edit, match: str) -> None:
    path, _ = make_case()
    _rewrite(path, edit)
    with pytest.raises(InputError, match=match) as err:
        load_case(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_invalid_json_and_missing_manifest(tmp_path: Path) -> None:
    (tmp_path / "case.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_case(tmp_path / "case.json")
    with pytest.raises(InputError, match="case manifest not found"):
        load_case(tmp_path / "none.json")
    (tmp_path / "folder.json").mkdir()  # exists but is not a readable file
    with pytest.raises(InputError, match="folder.json"):
        load_case(tmp_path / "folder.json")


def test_grid_mismatch_names_both_files_unless_resampling(make_case, tmp_path: Path) -> None:
    path, grid = make_case()
    other = Grid(grid.shape, grid.spacing, (5.0, 0.0, 0.0), grid.direction)
    write_image(tmp_path / "d1_gtv.nii.gz", ball(grid.shape, (6, 10, 10), 6.0, grid.spacing).astype(np.uint8), other)
    with pytest.raises(InputError, match=r"d1_gtv.nii.gz \(timepoints\[1\].gtv\): grid: differs from .*d0_flair"):
        load_case(path)
    case = load_case(path, resample=True)
    moved = case.gtv(case.timepoints[1])
    assert moved.shape == grid.shape and moved.any()


def test_empty_gtv_negative_dose_nonbinary_mask(make_case, tmp_path: Path) -> None:
    path, grid = make_case()
    write_image(tmp_path / "d1_gtv.nii.gz", np.zeros(grid.shape, np.uint8), grid)
    write_image(tmp_path / "dose.nii.gz", np.full(grid.shape, -1.0, np.float32), grid)
    write_image(tmp_path / "brain.nii.gz", np.full(grid.shape, 2, np.uint8), grid)
    case = load_case(path)
    with pytest.raises(InputError, match=r"d1_gtv.nii.gz: timepoints\[1\].gtv: GTV is empty"):
        case.gtv(case.timepoints[1])
    with pytest.raises(InputError, match=r"dose.nii.gz: dose: negative dose"):
        case.dose()
    with pytest.raises(InputError, match=r"brain.nii.gz: brain_mask: mask is not binary"):
        case.brain_mask()


def test_case_from_arrays_equals_the_loaded_case_and_forecasts_identically() -> None:
    """The Slicer logic's in-memory case gives the same volumes and the same forecast as the manifest on disk."""
    from gliomaforecast.io.case import Case, load_case
    from gliomaforecast.forecast import run_forecast

    sample = Path(__file__).resolve().parents[2] / "Resources" / "SampleData" / "sample_patient" / "case.json"
    disk = load_case(sample)
    tps = disk.timepoints
    memory = Case.from_arrays(disk.grid, disk.days, [disk.gtv(t) for t in tps],
                              images=[{"flair": disk.image(t, "flair")} for t in tps], patient_id=disk.patient_id,
                              rt_start_day=disk.rt_start_day, dose=disk.dose(), brain_mask=disk.brain_mask(),
                              labels=[None] * (len(tps) - 1) + [disk.labels(tps[-1])])
    assert memory.grid == disk.grid and list(memory.days) == list(disk.days)
    assert np.array_equal(memory.gtv(memory.timepoints[-1]), disk.gtv(tps[-1]))
    assert np.array_equal(memory.labels(memory.timepoints[-1]), disk.labels(tps[-1]))
    assert memory.labels(memory.timepoints[0]) is None
    a = run_forecast(memory, 351.0, "evolution-field", samples=2, n_bootstrap=5)
    b = run_forecast(disk, 351.0, "evolution-field", samples=2, n_bootstrap=5)
    assert a.plan == b.plan == "estro-eano"
    np.testing.assert_array_equal(a.output.probability, b.output.probability)
    np.testing.assert_array_equal(a.ctv_standard, b.ctv_standard)
    np.testing.assert_array_equal(a.ctv_forecast, b.ctv_forecast)


def test_case_from_arrays_rejects_bad_arrays() -> None:
    from gliomaforecast.io.case import Case
    from gliomaforecast.geometry import Grid

    grid = Grid((4, 5, 6), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    gtv = np.zeros(grid.shape, bool)
    gtv[2, 2, 2] = True
    with pytest.raises(InputError, match=r"timepoints\[1\].gtv: GTV is empty"):
        Case.from_arrays(grid, [0, 30], [gtv, np.zeros_like(gtv)])
    with pytest.raises(InputError, match=r"timepoints\[1\].day: out of order"):
        Case.from_arrays(grid, [30, 0], [gtv, gtv])
    with pytest.raises(InputError, match=r"timepoints\[0\].images.flair: shape \(4, 5\) differs from the grid"):
        Case.from_arrays(grid, [0, 30], [gtv, gtv], images=[{"flair": np.zeros((4, 5))}, {}])
    with pytest.raises(InputError, match="dose: negative dose"):
        Case.from_arrays(grid, [0, 30], [gtv, gtv], dose=-np.ones(grid.shape))
    with pytest.raises(InputError, match=r"timepoints\[1\].labels: values 0, 7: BraTS labels are 0-4"):
        Case.from_arrays(grid, [0, 30], [gtv, gtv], labels=[None, np.where(gtv, 7, 0)])
    with pytest.raises(InputError, match="2 GTVs, 2 image sets and 1 label maps"):
        Case.from_arrays(grid, [0, 30], [gtv, gtv], labels=[None])
    source = gtv.copy()
    case = Case.from_arrays(grid, [0, 30], [source, gtv])
    source[:] = True  # the case keeps its own copy
    assert case.gtv(case.timepoints[0]).sum() == 1
