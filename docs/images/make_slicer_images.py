"""Render the images of docs/slicer.md from the MRML nodes that ForecastLogic builds headless (slicer-core wheel).

These are not screenshots of the Slicer application (no Qt here): the 3D view is a VTK offscreen render of the
targets segmentation's closed-surface representation, the slice and chart views are matplotlib drawings of the
output nodes' voxels and table columns.

    .venv/bin/python docs/images/make_slicer_images.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import slicer  # noqa: E402
import vtk  # noqa: E402
from vtk.util import numpy_support  # noqa: E402

from GliomaForecastLib import adapters, conventions  # noqa: E402
from gliomaforecast.forecasters import DEFAULT_FORECASTER  # noqa: E402
from GliomaForecastLib.logic import ForecastLogic  # noqa: E402
from GliomaForecastLib.scene import headless_scene  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
SAMPLE_CASE = REPO / "Resources" / "SampleData" / "sample_patient" / "case.json"
FORECAST_DAYS_AFTER_LAST_SCAN = 120.0


def probability_colormap() -> matplotlib.colors.ListedColormap:
    """The module's probability color table as a matplotlib colormap."""
    table = conventions.probability_color_table(slicer.mrmlScene)
    rgba = [[0.0] * 4 for _ in range(256)]
    for i in range(256):
        table.GetColor(i, rgba[i])
    return matplotlib.colors.ListedColormap(np.array(rgba)[:, :3])


def render_3d(targets, flair, path: Path) -> None:
    """VTK offscreen render of the closed surfaces of the target segments."""
    targets.GetSegmentation().CreateRepresentation("Closed surface")
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(0.08, 0.09, 0.12)
    segmentation = targets.GetSegmentation()
    for i in range(segmentation.GetNumberOfSegments()):
        sid = segmentation.GetNthSegmentID(i)
        segment = segmentation.GetSegment(sid)
        surface = vtk.vtkPolyData()
        targets.GetClosedSurfaceRepresentation(sid, surface)
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(surface)
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*segment.GetColor())
        actor.GetProperty().SetOpacity({"GTV": 1.0, "CTV standard": 0.25, "CTV forecast": 0.45}[segment.GetName()])
        renderer.AddActor(actor)
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(640, 480)
    window.AddRenderer(renderer)
    camera = renderer.GetActiveCamera()
    camera.Azimuth(35)
    camera.Elevation(20)
    renderer.ResetCamera()
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.Update()
    image = grab.GetOutput()
    width, height, _ = image.GetDimensions()
    rgb = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)[::-1, :, :3]
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    ax.imshow(rgb)
    ax.axis("off")
    handles = [matplotlib.patches.Patch(color=conventions.SEGMENT_COLORS[n], label=n)
               for n in ("GTV", "CTV standard", "CTV forecast")]
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render_slices(flair, probability, targets, path: Path) -> None:
    """Axial slice through the GTV centre: FLAIR with the probability map, and FLAIR with the target contours."""
    image = adapters.array_from_volume(flair).astype(float)
    prob = adapters.array_from_volume(probability)
    masks = {n: adapters.segment_mask(targets, n)[0] for n in ("GTV", "CTV standard", "CTV forecast")}
    z = int(np.round(np.nonzero(masks["GTV"])[0].mean()))
    spacing = adapters.grid_from_volume(flair).spacing
    extent = (0, image.shape[2] * spacing[2], image.shape[1] * spacing[1], 0)
    lo, hi = np.percentile(image[image > 0], [1, 99]) if np.any(image > 0) else (0, 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), dpi=100)
    for ax in axes:
        ax.imshow(image[z], cmap="gray", vmin=lo, vmax=hi, extent=extent)
        ax.set_xlabel("mm")
    shown = axes[0].imshow(np.ma.masked_less(prob[z], 0.05), cmap=probability_colormap(), vmin=0, vmax=1, alpha=0.7,
                           extent=extent)
    fig.colorbar(shown, ax=axes[0], fraction=0.046, label="P(tumor)")
    axes[0].set_title(probability.GetName())
    x = (np.arange(image.shape[2]) + 0.5) * spacing[2]
    y = (np.arange(image.shape[1]) + 0.5) * spacing[1]
    for name, mask in masks.items():
        axes[1].contour(x, y, mask[z].astype(float), levels=[0.5], colors=[conventions.SEGMENT_COLORS[name]],
                        linewidths={"CTV standard": 3.0}.get(name, 1.5))
    axes[1].set_title(targets.GetName())
    handles = [matplotlib.lines.Line2D([], [], color=conventions.SEGMENT_COLORS[n], label=n) for n in masks]
    axes[1].legend(handles=handles, loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render_growth(table, path: Path) -> None:
    """The growth table's columns, drawn as the module's plot chart shows them."""
    column = lambda name: slicer.util.arrayFromTableColumn(table, name)  # noqa: E731
    days = column("Day")
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.fill_between(days, column("Lower 2.5% (mL)"), column("Upper 97.5% (mL)"), color="0.85", label="95% band")
    ax.plot(days, column("Median (mL)"), color=(0.85, 0.2, 0.2), label="median")
    observed = column("Observed (mL)")
    ax.plot(days[~np.isnan(observed)], observed[~np.isnan(observed)], "ko", label="observed")
    rt = table.GetAttribute("GliomaForecast.RtStartDay")
    if rt not in (None, "None"):
        ax.axvline(float(rt), color="0.4", ls=":", label="RT start")
    ax.set_xlabel("Day")
    ax.set_ylabel("Volume (mL)")
    ax.set_title(table.GetName())
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    scene = headless_scene()
    logic = ForecastLogic(scene)
    loaded = logic.loadCase(SAMPLE_CASE)
    timepoints = [(d, loaded.flair[d], loaded.gtv[d], "GTV") for d in loaded.days]
    forecaster = DEFAULT_FORECASTER
    day = loaded.days[-1] + FORECAST_DAYS_AFTER_LAST_SCAN
    nodes = logic.forecast(timepoints, day, rtStartDay=loaded.rtStartDay, brainMask=loaded.brainMask,
                           dose=loaded.dose, forecaster=forecaster)
    print(f"forecaster: {forecaster}, days {loaded.days}, forecast day {day:g}")
    last = loaded.days[-1]
    render_slices(loaded.flair[last], nodes.probability, nodes.targets, OUT / "slicer_slices.png")
    render_3d(nodes.targets, loaded.flair[last], OUT / "slicer_targets_3d.png")
    render_growth(nodes.table, OUT / "slicer_growth.png")
    for name in ("GTV", "CTV standard", "CTV forecast"):
        print(f"{name}: {logic.segmentVolumeMl(nodes.targets, name):.1f} mL")


if __name__ == "__main__":
    main()
