"""Growth from a case manifest: burdens in mL and per slice in mm^2, figure, and the growth command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gliomaforecast.io.case import load_case
from gliomaforecast.cli import main
from gliomaforecast.geometry import Grid
from gliomaforecast.growth import burden_from_case, fit_case_slices, fit_growth, slice_areas_from_case
from gliomaforecast.growth.plot import plot_growth
from gliomaforecast.io.images import write_image


def write_case(folder: Path, sizes: list[tuple[int, int]], days: list[float], rt: float | None = 30.0) -> Path:
    """A case whose GTV at timepoint i is a box of sizes[i] = (slices, in-plane side) voxels on a
    2 x 0.5 x 0.8 mm grid."""
    grid = Grid.identity((8, 20, 20), (2.0, 0.5, 0.8))
    tps = []
    for i, ((nz, side), day) in enumerate(zip(sizes, days)):
        gtv = np.zeros(grid.shape, np.uint8)
        gtv[1:1 + nz, 2:2 + side, 2:2 + side] = 1
        write_image(folder / f"gtv{i}.nii.gz", gtv, grid)
        tps.append({"day": day, "gtv": f"gtv{i}.nii.gz"})
    manifest = {"schema": "gliomaforecast.case/1", "patient_id": "G-1", "timepoints": tps}
    if rt is not None:
        manifest["rt_start_day"] = rt
    path = folder / "case.json"
    path.write_text(json.dumps(manifest))
    return path


SIZES = [(2, 4), (3, 6), (3, 5), (4, 7)]
DAYS = [0.0, 40.0, 90.0, 150.0]


def test_burden_from_case_in_ml_and_slice_areas_in_mm2(tmp_path):
    case = load_case(write_case(tmp_path, SIZES, DAYS))
    days, volumes = burden_from_case(case)
    np.testing.assert_array_equal(days, DAYS)
    voxel_mm3 = 2.0 * 0.5 * 0.8
    np.testing.assert_allclose(volumes, [nz * s * s * voxel_mm3 / 1000.0 for nz, s in SIZES])
    days, areas = slice_areas_from_case(case)
    assert areas.shape == (4, 8)
    np.testing.assert_allclose(areas[:, 1], [s * s * 0.4 for _, s in SIZES])
    assert areas[0, 3] == 0 and areas[1, 3] == pytest.approx(36 * 0.4)
    # areas summed over slices times the slice thickness give the volume
    np.testing.assert_allclose(areas.sum(axis=1) * 2.0 / 1000.0, volumes)


def test_fit_every_tumor_bearing_slice(tmp_path):
    case = load_case(write_case(tmp_path, SIZES, DAYS))
    fits = fit_case_slices(case, n_bootstrap=3)
    assert sorted(fits) == [1, 2, 3, 4]  # slices with tumor at any timepoint
    assert all(f.model == "radiotherapy" and f.rt_start_day == 30.0 for f in fits.values())
    np.testing.assert_allclose(fits[4].burdens, [0, 0, 0, 49 * 0.4])
    assert fit_case_slices(case, min_area_mm2=20.0, n_bootstrap=2) == {}  # largest slice area is 19.6 mm^2


def test_plot_growth_writes_png(tmp_path):
    fit = fit_growth([0, 30, 60, 120], [1.0, 1.5, 1.2, 1.6], 20.0, n_bootstrap=5)
    out = plot_growth(fit, tmp_path / "g.png", forecast_days=[200.0])
    assert out == tmp_path / "g.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]  # no temporary left behind


def test_growth_command_writes_json_and_png(tmp_path, capsys):
    case = write_case(tmp_path, SIZES, DAYS)
    out = tmp_path / "out"
    assert main(["growth", str(case), "--day", "200", "--day", "250", "--n-bootstrap", "8", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["growth.json", "growth.png"]
    record = json.loads((out / "growth.json").read_text())
    assert record["model"] == "radiotherapy" and record["rt_start_day"] == 30.0 and record["unit"] == "mL"
    assert [p["day"] for p in record["predictions"]] == [200.0, 250.0]
    for p in record["predictions"]:
        assert p["lower_2.5"] <= p["median"] <= p["upper_97.5"]
    assert set(record["parameters"]) == {"growth_rate", "decay_rate", "delay", "slope", "surviving_fraction",
                                         "initial_burden"}
    assert record["parameters"]["delay"]["fixed"] is True and record["parameters"]["growth_rate"]["fixed"] is False
    assert record["bootstrap"]["n"] == 8
    # same inputs and seed: identical output
    out2 = tmp_path / "out2"
    main(["growth", str(case), "--day", "200", "--day", "250", "--n-bootstrap", "8", "--out", str(out2)])
    assert (out2 / "growth.json").read_text().replace("out2", "out") == (out / "growth.json").read_text()


def test_growth_command_rt_override_to_after_scans_uses_exponential(tmp_path):
    case = write_case(tmp_path, SIZES, DAYS)
    out = tmp_path / "out"
    assert main(["growth", str(case), "--rt-start-day", "400", "--n-bootstrap", "4", "--out", str(out)]) == 0
    record = json.loads((out / "growth.json").read_text())
    assert record["model"] == "exponential" and "not before the last scan" in record["note"]
    assert record["model_rt_start_day"] is None and record["predictions"] == []


@pytest.mark.parametrize("args, text", [
    (["--day", "nan"], "--day: forecast days must be finite"),
    (["--n-bootstrap", "-3"], "--n-bootstrap: must be 0 or more"),
    (["--noise", "-0.1"], "--noise: must be a relative noise >= 0"),
])
def test_growth_command_bad_input_one_line_exit_2(tmp_path, capsys, args, text):
    case = write_case(tmp_path, SIZES, DAYS)
    out = tmp_path / "out"
    assert main(["growth", str(case), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and text in err
    assert not out.exists()


def test_growth_command_single_timepoint_is_an_error(tmp_path, capsys):
    case = write_case(tmp_path, SIZES[:1], DAYS[:1])
    assert main(["growth", str(case), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "at least two scans" in err and str(case) in err and "\n" not in err
    assert not (tmp_path / "out").exists()
