"""MRML <-> (array, Grid) adapters with exact geometry.

Slicer volume nodes carry an IJK-to-RAS matrix; the core's :class:`gliomaforecast.geometry.Grid` carries ITK's
LPS origin, direction (columns = index axes i, j, k) and spacing (mm, array order z, y, x). With
F = diag(-1, -1, 1) (RAS <-> LPS), the two are related by

    IJKToRAS[:3, :3] = F @ direction @ diag(spacing_xyz),    IJKToRAS[:3, 3] = F @ origin.

Linear transforms: ITK's (and the core's) convention maps a point (LPS mm) of the fixed frame to the moving frame, i.e.
it is Slicer's transform *from parent* (parent: the fixed frame); in RAS its 4x4 matrix is C @ M_lps @ C with
C = diag(-1, -1, 1, 1) (:func:`ras_from_parent_matrix`).

Arrays are numpy in (z, y, x) order, the order of ``slicer.util.arrayFromVolume`` and SimpleITK. Everything here
uses MRML and VTK only (no Qt, no ``slicer.app``/``slicer.modules``), so it runs in Slicer and on the slicer-core
wheel.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from gliomaforecast.geometry import Grid

_RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0])
_RAS_FROM_LPS_4 = np.diag([-1.0, -1.0, 1.0, 1.0])


# --- geometry -------------------------------------------------------------------------------------

def ijk_to_ras_from_grid(grid: Grid) -> np.ndarray:
    """The 4x4 IJK-to-RAS matrix (mm) of a 3D ``grid``."""
    if grid.ndim != 3:
        raise ValueError(f"Slicer volumes are 3D; got a {grid.ndim}D grid")
    spacing_xyz = np.asarray(grid.spacing[::-1])
    matrix = np.eye(4)
    matrix[:3, :3] = _RAS_FROM_LPS @ grid.direction_matrix @ np.diag(spacing_xyz)
    matrix[:3, 3] = _RAS_FROM_LPS @ np.asarray(grid.origin)
    return matrix


def grid_from_ijk_to_ras(matrix: np.ndarray, dimensions_xyz: Sequence[int]) -> Grid:
    """The :class:`Grid` of an image of VTK ``dimensions_xyz`` (i, j, k) whose IJK-to-RAS matrix is ``matrix``."""
    matrix = np.asarray(matrix, dtype=float)
    lps = _RAS_FROM_LPS @ matrix[:3, :3]
    spacing_xyz = np.linalg.norm(lps, axis=0)
    direction = lps / spacing_xyz[None, :]
    origin = _RAS_FROM_LPS @ matrix[:3, 3]
    return Grid(tuple(int(d) for d in dimensions_xyz[::-1]), tuple(spacing_xyz[::-1]), tuple(origin),
                tuple(direction.ravel()))


def _matrix_to_array(vmatrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[vmatrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _array_to_matrix(matrix: np.ndarray) -> vtk.vtkMatrix4x4:
    vmatrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            vmatrix.SetElement(r, c, float(matrix[r, c]))
    return vmatrix


def grid_from_volume(volumeNode: slicer.vtkMRMLVolumeNode) -> Grid:
    """The exact :class:`Grid` of a volume node (its image data must exist)."""
    image = volumeNode.GetImageData()
    if image is None:
        raise ValueError(f"volume {volumeNode.GetName()!r} has no image data")
    vmatrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(vmatrix)
    return grid_from_ijk_to_ras(_matrix_to_array(vmatrix), image.GetDimensions())


def set_volume_geometry(volumeNode: slicer.vtkMRMLVolumeNode, grid: Grid) -> None:
    """Set ``grid``'s origin, spacing and directions on a volume node (the image data is not touched)."""
    volumeNode.SetIJKToRASMatrix(_array_to_matrix(ijk_to_ras_from_grid(grid)))


# --- volumes --------------------------------------------------------------------------------------

def array_from_volume(volumeNode: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """A copy of the voxels of a scalar volume node, (z, y, x) order, in the stored dtype."""
    image = volumeNode.GetImageData()
    if image is None or image.GetPointData().GetScalars() is None:
        raise ValueError(f"volume {volumeNode.GetName()!r} has no voxels")
    if image.GetNumberOfScalarComponents() != 1:
        raise ValueError(f"volume {volumeNode.GetName()!r} is not a scalar volume")
    shape = tuple(reversed(image.GetDimensions()))
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(shape).copy()


def volume_to_array_and_grid(volumeNode: slicer.vtkMRMLVolumeNode) -> tuple[np.ndarray, Grid]:
    """(voxels (z, y, x), exact Grid) of a scalar volume node."""
    return array_from_volume(volumeNode), grid_from_volume(volumeNode)


def update_volume_from_array(volumeNode: slicer.vtkMRMLVolumeNode, array: np.ndarray, grid: Grid) -> None:
    """Replace a volume node's voxels (deep copy) and geometry by ``array`` (z, y, x) on ``grid``."""
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.shape != grid.shape:
        raise ValueError(f"array shape {array.shape} does not match grid shape {grid.shape}")
    image = vtk.vtkImageData()
    image.SetDimensions(array.shape[::-1])
    vtk_array = numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True)
    image.GetPointData().SetScalars(vtk_array)
    set_volume_geometry(volumeNode, grid)
    volumeNode.SetAndObserveImageData(image)


def add_volume(scene: slicer.vtkMRMLScene, array: np.ndarray, grid: Grid, name: str,
               className: str = "vtkMRMLScalarVolumeNode") -> slicer.vtkMRMLVolumeNode:
    """A new volume node of ``className`` in ``scene`` holding ``array`` on ``grid``, with display nodes."""
    node = scene.AddNewNodeByClass(className, name)
    update_volume_from_array(node, array, grid)
    node.CreateDefaultDisplayNodes()
    return node


# --- segmentations --------------------------------------------------------------------------------

def reference_volume(segmentationNode: slicer.vtkMRMLSegmentationNode) -> slicer.vtkMRMLVolumeNode | None:
    """The volume node a segmentation references for its geometry, or None."""
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    return segmentationNode.GetNodeReference(role)


def segment_id(segmentationNode: slicer.vtkMRMLSegmentationNode, segmentIdOrName: str) -> str:
    """The ID of a segment given by ID or by name; ValueError naming the segmentation when there is none."""
    segmentation = segmentationNode.GetSegmentation()
    if segmentation.GetSegment(segmentIdOrName) is not None:
        return segmentIdOrName
    found = segmentation.GetSegmentIdBySegmentName(segmentIdOrName)
    if found:
        return found
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    raise ValueError(f"segmentation {segmentationNode.GetName()!r} has no segment {segmentIdOrName!r} "
                     f"(segments: {', '.join(names) or 'none'})")


def segment_mask(segmentationNode: slicer.vtkMRMLSegmentationNode, segmentIdOrName: str,
                 referenceVolumeNode: slicer.vtkMRMLVolumeNode | None = None) -> tuple[np.ndarray, Grid]:
    """A segment as a bool mask (z, y, x) on the reference geometry: ``referenceVolumeNode`` when given, else the
    segmentation's reference volume, else its stored reference geometry (the full reference extent)."""
    sid = segment_id(segmentationNode, segmentIdOrName)
    scene = segmentationNode.GetScene()
    reference = referenceVolumeNode or reference_volume(segmentationNode)
    before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__GliomaForecast_export__")
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(sid)
    try:
        if reference is not None:
            ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentationNode, ids, labelmap, reference)
        else:
            ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentationNode, ids, labelmap, None, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
        if not ok:
            raise RuntimeError(f"exporting segment {sid!r} of {segmentationNode.GetName()!r} failed")
        array, grid = volume_to_array_and_grid(labelmap)
    finally:
        # Remove the temporary labelmap and what the export made for it (display node, color table); keep the
        # display node the export may have given the segmentation itself.
        keep = {segmentationNode.GetDisplayNodeID()}
        created = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
        for node in created:
            if node.GetID() not in before and node.GetID() not in keep:
                scene.RemoveNode(node)
    return array > 0, grid


def label_map_from_segments(segmentationNode: slicer.vtkMRMLSegmentationNode, names: Mapping[int, str],
                            referenceVolumeNode: slicer.vtkMRMLVolumeNode | None = None) -> np.ndarray | None:
    """The label map (int16, z, y, x; 0 elsewhere) that ``names`` (label -> segment name) describes: each segment of
    one of those names exported as by :func:`segment_mask` (same reference geometry), a voxel in several of them
    taking the highest label. None when the segmentation has none of these segments."""
    segmentation = segmentationNode.GetSegmentation()
    found = {label: segmentation.GetSegmentIdBySegmentName(name) for label, name in names.items()}
    found = {label: sid for label, sid in found.items() if sid}
    if not found:
        return None
    labels = None
    for label in sorted(found):
        mask, _ = segment_mask(segmentationNode, found[label], referenceVolumeNode)
        labels = np.zeros(mask.shape, np.int16) if labels is None else labels
        labels[mask] = label
    return labels


def add_segment_from_mask(segmentationNode: slicer.vtkMRMLSegmentationNode, mask: np.ndarray, grid: Grid,
                          name: str, color: Sequence[float] | None = None, terminology: str | None = None) -> str:
    """Add ``mask`` (bool, z, y, x, on ``grid``) as a new binary-labelmap segment named ``name``; returns its ID.

    The labelmap is imported voxel for voxel (no resampling when ``grid`` is the segmentation's reference
    geometry). ``color`` is RGB in [0, 1]; ``terminology`` a serialized Slicer terminology entry."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != grid.shape:
        raise ValueError(f"segment {name!r} has shape {mask.shape}, grid is {grid.shape}")
    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetDimensions(mask.shape[::-1])
    labelmap.GetPointData().SetScalars(numpy_support.numpy_to_vtk(mask.astype(np.uint8).ravel(), deep=True))
    labelmap.SetImageToWorldMatrix(_array_to_matrix(ijk_to_ras_from_grid(grid)))
    segment = slicer.vtkSegment()
    segment.SetName(name)
    segment.SetNameAutoGenerated(False)
    if color is not None:
        segment.SetColor(*[float(c) for c in color])
        segment.SetColorAutoGenerated(False)
    if terminology:
        segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), terminology)
    segment.AddRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(), labelmap)
    segmentation = segmentationNode.GetSegmentation()
    sid = segmentation.GenerateUniqueSegmentID(name.replace(" ", "_"))
    if not segmentation.AddSegment(segment, sid):
        raise RuntimeError(f"adding segment {name!r} to {segmentationNode.GetName()!r} failed")
    return sid


# --- transforms -----------------------------------------------------------------------------------

def add_grid_transform(scene: slicer.vtkMRMLScene, vectors_lps: np.ndarray, grid: Grid,
                       name: str) -> slicer.vtkMRMLGridTransformNode:
    """A grid transform node from a displacement field of physical LPS vectors (z, y, x, 3; x, y, z components,
    mm) on ``grid``, ITK's displacement-field convention (a resampling, "pull" map from the fixed grid): Slicer
    stores such a field as the transform *from* parent, with the vectors converted to RAS."""
    vectors_lps = np.asarray(vectors_lps, dtype=np.float64)
    if vectors_lps.shape != grid.shape + (3,):
        raise ValueError(f"displacement must have shape {grid.shape + (3,)}, got {vectors_lps.shape}")
    vectors_ras = vectors_lps * np.array([-1.0, -1.0, 1.0])
    matrix = ijk_to_ras_from_grid(grid)
    spacing_xyz = np.asarray(grid.spacing[::-1])
    direction = np.eye(4)
    direction[:3, :3] = matrix[:3, :3] / spacing_xyz[None, :]
    image = vtk.vtkImageData()
    image.SetDimensions(grid.shape[::-1])
    image.SetOrigin(*matrix[:3, 3])
    image.SetSpacing(*spacing_xyz)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(vectors_ras.reshape(-1, 3), deep=True))
    transform = slicer.vtkOrientedGridTransform()
    transform.SetDisplacementGridData(image)
    transform.SetGridDirectionMatrix(_array_to_matrix(direction))
    transform.SetInterpolationModeToLinear()
    node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", name)
    node.SetAndObserveTransformFromParent(transform)
    return node


def lps_matrix(transform) -> np.ndarray:
    """The 4x4 matrix (LPS, mm) of a linear ITK/SimpleITK ``transform`` (anything with ``TransformPoint``: e.g. an
    Euler3DTransform or an AffineTransform with its centre), built from its images of the origin and of the unit
    vectors, so the centre and the parametrisation need not be known. ValueError when the transform is not linear
    (its ``IsLinear()`` says so, or a few far points do not follow the matrix)."""
    isLinear = getattr(transform, "IsLinear", None)
    if isLinear is not None and not isLinear():
        raise ValueError("the transform is not linear: a linear transform node cannot hold it")
    origin = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)), dtype=float)
    matrix = np.eye(4)
    for axis in range(3):
        unit = [0.0, 0.0, 0.0]
        unit[axis] = 1.0
        matrix[:3, axis] = np.asarray(transform.TransformPoint(tuple(unit)), dtype=float) - origin
    matrix[:3, 3] = origin
    for probe in ((100.0, -80.0, 60.0), (-120.0, 90.0, -150.0), (37.0, 210.0, -12.0)):
        expected = matrix[:3, :3] @ np.asarray(probe) + origin
        if not np.allclose(transform.TransformPoint(probe), expected, atol=1e-6):
            raise ValueError("the transform is not linear: a linear transform node cannot hold it")
    return matrix


def ras_from_parent_matrix(transform) -> np.ndarray:
    """Slicer's 4x4 *transform from parent* (RAS, mm) of an ITK-convention ``transform`` (fixed LPS point -> moving
    LPS point; the parent is the fixed frame): C @ M_lps @ C with C = diag(-1, -1, 1, 1)."""
    return _RAS_FROM_LPS_4 @ lps_matrix(transform) @ _RAS_FROM_LPS_4


def add_linear_transform(scene: slicer.vtkMRMLScene, transform, name: str) -> slicer.vtkMRMLLinearTransformNode:
    """A linear transform node holding an ITK-convention ``transform`` (fixed -> moving, LPS mm; see
    :func:`ras_from_parent_matrix`) as its transform from parent: a volume of the moving frame placed under the node
    is shown aligned with the fixed frame (its transform *to* parent maps moving points onto fixed ones)."""
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    node.SetMatrixTransformFromParent(_array_to_matrix(ras_from_parent_matrix(transform)))
    return node


def matrix_to_parent(transformNode: slicer.vtkMRMLTransformNode) -> np.ndarray:
    """The 4x4 RAS matrix (mm) of a linear transform node's transform to parent."""
    vmatrix = vtk.vtkMatrix4x4()
    transformNode.GetMatrixTransformToParent(vmatrix)
    return _matrix_to_array(vmatrix)
