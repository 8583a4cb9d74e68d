"""Acquisition: head pose, the scanner's voxel grid, bias field and Rician noise.

A subject lies in the scanner with its own pose. The pose is the affine ``T`` that maps a
point of the native (scanner) world, in mm RAS, to the point of the template world that holds
the same anatomy. The scanner samples a box of voxels around the head; the box's voxel axes
follow the scanner's axes but may be stored in any order and direction (RAS, LAS, LPS,
sagittal or coronal storage), which the stored affine records. Signal is multiplied by a
smooth bias field and a global scale, then gets Rician noise (magnitude of complex Gaussian
noise), as in a magnitude MR image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel import orientations
from scipy import ndimage

ORIENTATIONS = ("RAS", "LAS", "LPS", "ASL", "PIR", "LIP")
"""Stored voxel-axis orientations drawn per scan: axial (RAS, LAS, LPS), sagittal (ASL, PIR),
coronal (LIP); each letter is the world direction a voxel axis increases towards."""


@dataclass(frozen=True)
class Pose:
    """Head pose: native world → template world is translation ∘ rotation ∘ scaling.

    Attributes
    ----------
    rotation_deg : numpy.ndarray of shape (3,)
        Rotations about the x, y and z axes in degrees, applied x first, then y, then z.
    translation_mm : numpy.ndarray of shape (3,)
        Translation in mm, applied last.
    scale : numpy.ndarray of shape (3,)
        Per-axis scaling (template mm per native mm), applied first; > 1 means a smaller head.
    """

    rotation_deg: np.ndarray
    translation_mm: np.ndarray
    scale: np.ndarray

    def native_to_template(self) -> np.ndarray:
        """The 4×4 affine mapping native world mm (RAS) to template world mm (RAS)."""
        ax, ay, az = np.deg2rad(self.rotation_deg)
        rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        affine = np.eye(4)
        affine[:3, :3] = rz @ ry @ rx @ np.diag(self.scale)
        affine[:3, 3] = self.translation_mm
        return affine


def draw_pose(
    rng: np.random.Generator,
    max_rotation_deg: float = 10.0,
    max_translation_mm: float = 10.0,
    max_scale_change: float = 0.05,
) -> Pose:
    """Uniformly random pose within ±``max_rotation_deg``, ±``max_translation_mm`` and
    1 ± ``max_scale_change`` per axis."""
    return Pose(
        rotation_deg=rng.uniform(-max_rotation_deg, max_rotation_deg, 3),
        translation_mm=rng.uniform(-max_translation_mm, max_translation_mm, 3),
        scale=1.0 + rng.uniform(-max_scale_change, max_scale_change, 3),
    )


@dataclass(frozen=True)
class NativeGrid:
    """The scanner's voxel grid of one scan.

    Attributes
    ----------
    shape : tuple of int
        Voxels along the three stored axes.
    affine : numpy.ndarray of shape (4, 4)
        Voxel-to-native-world affine (mm, RAS): a signed permutation times the voxel size.
    orientation : str
        Three-letter axis code of the stored voxel axes (``nibabel.aff2axcodes`` of affine).
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    orientation: str


def head_box_in_native(box_mm: np.ndarray, native_to_template: np.ndarray) -> np.ndarray:
    """Axis-aligned native-world box (2, 3) that holds the template box ``box_mm`` (2, 3)."""
    corners = np.array(np.meshgrid(*box_mm.T, indexing="ij")).reshape(3, -1)
    inverse = np.linalg.inv(native_to_template)
    native = inverse[:3, :3] @ corners + inverse[:3, 3:]
    return np.stack([native.min(axis=1), native.max(axis=1)])


def draw_grid(
    rng: np.random.Generator, box_mm: np.ndarray, voxel_mm: float, orientation: str
) -> NativeGrid:
    """Voxel grid covering the native box ``box_mm`` plus a random 3–20 mm margin per side.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the margins.
    box_mm : numpy.ndarray of shape (2, 3)
        Lower and upper corner of the head in native world mm.
    voxel_mm : float
        Isotropic voxel size in mm.
    orientation : str
        Axis code of the stored voxel axes, e.g. ``"LPS"``.
    """
    lo = box_mm[0] - rng.uniform(3.0, 20.0, 3)
    hi = box_mm[1] + rng.uniform(3.0, 20.0, 3)
    ornt = orientations.axcodes2ornt(orientation)  # row k: world axis of voxel axis k, sign
    affine = np.diag([0.0, 0.0, 0.0, 1.0])
    shape = []
    for voxel_axis, (world_axis, sign) in enumerate(ornt.astype(int)):
        affine[world_axis, voxel_axis] = sign * voxel_mm
        affine[world_axis, 3] = lo[world_axis] if sign > 0 else hi[world_axis]
        shape.append(int(np.ceil((hi[world_axis] - lo[world_axis]) / voxel_mm)) + 1)
    return NativeGrid(tuple(shape), affine, orientation)


def _native_voxel_map(volume_affine, grid: NativeGrid, native_to_template) -> np.ndarray:
    """4×4 map from native voxel indices to voxel indices of the template-grid volume."""
    return np.linalg.inv(volume_affine) @ native_to_template @ grid.affine


def native_slices(
    voxel_box: np.ndarray, volume_affine: np.ndarray, grid: NativeGrid, native_to_template
) -> tuple[slice, ...]:
    """Native voxel slices covering the template-grid voxel box ``voxel_box`` (2, 3), inclusive.

    Lets a sparse volume (a lesion map) be resampled only where it is not zero.
    """
    corners = np.array(np.meshgrid(*voxel_box.T, indexing="ij")).reshape(3, -1)
    to_native = np.linalg.inv(_native_voxel_map(volume_affine, grid, native_to_template))
    native = to_native[:3, :3] @ corners + to_native[:3, 3:]
    lo = np.maximum(np.floor(native.min(axis=1)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(native.max(axis=1)).astype(int) + 2, grid.shape)
    return tuple(slice(a, max(a, b)) for a, b in zip(lo, hi, strict=True))


def resample_to_native(
    volume: np.ndarray,
    volume_affine: np.ndarray,
    grid: NativeGrid,
    native_to_template: np.ndarray,
    within: tuple[slice, ...] | None = None,
) -> np.ndarray:
    """Trilinear sample of a template-grid ``volume`` at the centres of the native voxels.

    Voxels whose centre falls outside the template grid, or outside ``within`` (native voxel
    slices, see :func:`native_slices`) when given, get 0.

    Returns
    -------
    numpy.ndarray of grid.shape, float32
    """
    within = within or tuple(slice(0, n) for n in grid.shape)
    voxel_map = _native_voxel_map(volume_affine, grid, native_to_template)
    start = np.array([s.start for s in within])
    result = np.zeros(grid.shape, dtype=np.float32)
    result[within] = ndimage.affine_transform(
        volume,
        voxel_map[:3, :3],
        voxel_map[:3, :3] @ start + voxel_map[:3, 3],
        output_shape=result[within].shape,
        output=np.float32,
        order=1,
        cval=0.0,
    )
    return result


def partial_volume_sigma(voxel_mm: float, template_voxel_mm: float = 1.0) -> float:
    """Gaussian sigma (template voxels) that widens the template's resolution to ``voxel_mm``.

    A voxel of width w integrates signal like a Gaussian of FWHM ≈ w; the template already has
    its own width, so only the difference of the variances is added.
    """
    extra = max(voxel_mm**2 - template_voxel_mm**2, 0.0)
    return float(np.sqrt(extra) / 2.3548 / template_voxel_mm)


def bias_field(rng: np.random.Generator, grid: NativeGrid, strength: float = 0.12) -> np.ndarray:
    """Smooth multiplicative field exp(p(x)) with p a random quadratic polynomial.

    The polynomial is evaluated in native world coordinates divided by 100 mm, centred on the
    grid, with coefficients N(0, ``strength``); a typical field varies by ±10–25 % over a head.

    Returns
    -------
    numpy.ndarray of grid.shape, float32
    """
    axes = []
    for voxel_axis, n in enumerate(grid.shape):
        index = np.arange(n, dtype=np.float32) - (n - 1) / 2.0
        spacing = np.abs(grid.affine[:3, voxel_axis]).sum()
        axes.append(index * np.float32(spacing / 100.0))
    x, y, z = np.ix_(*axes)
    c = (strength * rng.standard_normal(9)).astype(np.float32)
    log_field = c[0] * x + c[1] * y + c[2] * z + c[3] * x * x + c[4] * y * y + c[5] * z * z
    log_field = log_field + c[6] * x * y + c[7] * x * z + c[8] * y * z
    return np.exp(log_field).astype(np.float32)


def add_rician_noise(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of ``image`` plus complex Gaussian noise of standard deviation ``sigma``.

    The background becomes Rayleigh-distributed, as in a real magnitude image.
    """
    real = image + np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    imaginary = np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.hypot(real, imaginary)
