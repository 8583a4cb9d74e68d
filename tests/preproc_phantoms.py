"""FLAIR-like phantoms with a known pose, for the preprocessing tests and benchmark.

The anatomy is nilearn's bundled ICBM 2009a (symmetric) brain with its grey- and white-matter
probability maps; contrast is FLAIR-like (grey matter brighter than white matter, fluid dark).
A phantom can carry a skull, scalp and neck, a smooth multiplicative bias field, noise and
hyperintense lesions, and is sampled on a native grid in an arbitrary pose, so that tests can
check that registration recovers the pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

NILEARN_DATA = Path(nb.__file__).parents[1] / "nilearn" / "datasets" / "data"
MNI09A = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"


@dataclass(frozen=True)
class Phantom:
    """A native FLAIR phantom and its ground truth.

    Attributes
    ----------
    flair : nibabel.Nifti1Image
        Native-space FLAIR, float32.
    lesion_mask : nibabel.Nifti1Image
        Native-space binary lesion mask (uint8), all zero when the phantom has no lesions.
    native_to_template : numpy.ndarray of shape (4, 4)
        Maps native world mm (RAS) to ICBM 2009a template world mm (RAS).
    """

    flair: nb.Nifti1Image
    lesion_mask: nb.Nifti1Image
    native_to_template: np.ndarray


def _template_tissues() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Brain mask, GM and WM probabilities (1 mm, 2009a grid) and the grid's affine."""
    t1 = nb.load(NILEARN_DATA / MNI09A.format("t1"))
    gm = nb.load(NILEARN_DATA / MNI09A.format("gm")).get_fdata() / 255.0
    wm = nb.load(NILEARN_DATA / MNI09A.format("wm")).get_fdata() / 255.0
    brain = ndimage.binary_fill_holes(t1.get_fdata() > 0)
    return brain, gm, wm, t1.affine


def _lesions(wm: np.ndarray, n_lesions: int, rng: np.random.Generator) -> np.ndarray:
    """Spherical lesions of 3–6 mm radius centred in deep white matter (WM probability > 0.95)."""
    candidates = np.argwhere(ndimage.binary_erosion(wm > 0.95, iterations=4))
    grid = np.indices(wm.shape, sparse=True)
    lesions = np.zeros(wm.shape, dtype=bool)
    for centre in candidates[rng.choice(len(candidates), n_lesions, replace=False)]:
        radius = rng.uniform(3.0, 6.0)
        lesions |= sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2
    return lesions


def _head(brain: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Add fluid, skull, scalp and a neck of muscle around a 1 mm brain image."""
    neck = np.zeros_like(brain)
    ys, zs = np.nonzero(brain.any(axis=0))
    x0, y0, z_bottom = brain.shape[0] // 2, int(np.median(ys)), zs.min()
    xx, yy = np.indices(brain.shape[:2])
    neck[:, :, : z_bottom + 30] = (((xx - x0) / 45.0) ** 2 + ((yy - y0) / 40.0) ** 2 <= 1)[
        ..., None
    ]
    outside = ndimage.distance_transform_edt(~(brain | neck))
    head = intensity.copy()
    head[neck & ~brain] = 0.35
    head[(outside > 0) & (outside <= 3)] = 0.08
    head[(outside > 3) & (outside <= 9)] = 0.02
    head[(outside > 9) & (outside <= 15)] = 0.7
    return head


def _pad(volume: np.ndarray, affine: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad a 1 mm volume with zeros so that a head fits, shifting the affine accordingly."""
    padded = np.pad(volume, width)
    shifted = affine.copy()
    shifted[:3, 3] -= width * affine[:3, :3].sum(axis=1)
    return padded, shifted


def random_pose(rng: np.random.Generator, *, max_deg: float = 12.0, max_mm: float = 12.0):
    """A native→template affine (4, 4): rotation ≤ ``max_deg``, shift ≤ ``max_mm``, scale ±6 %."""
    pose = np.eye(4)
    rotation = Rotation.from_euler("xyz", rng.uniform(-max_deg, max_deg, 3), degrees=True)
    pose[:3, :3] = rotation.as_matrix() @ np.diag(rng.uniform(0.94, 1.06, 3))
    pose[:3, 3] = rng.uniform(-max_mm, max_mm, 3)
    return pose


def native_affine(voxel_mm: float, shape: tuple[int, int, int], axcodes: str) -> np.ndarray:
    """Affine (4, 4) of a native grid in orientation ``axcodes``, centred on the world origin."""
    affine = np.diag([0.0, 0.0, 0.0, 1.0])
    for axis, (world_axis, flip) in enumerate(nb.orientations.axcodes2ornt(axcodes)):
        affine[int(world_axis), axis] = voxel_mm * flip
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return affine


def make_phantom(
    rng: np.random.Generator,
    *,
    pose: np.ndarray,
    voxel_mm: float = 2.0,
    axcodes: str = "RAS",
    skull: bool = False,
    n_lesions: int = 0,
    fov_mm: tuple[float, float, float] = (200.0, 240.0, 200.0),
    noise: float = 0.02,
    bias: bool = True,
) -> Phantom:
    """Sample a FLAIR phantom on a native grid whose world maps to the template by ``pose``."""
    brain, gm, wm, affine = _template_tissues()
    csf = np.clip(brain - gm - wm, 0, 1)
    intensity = (0.08 * csf + 0.75 * gm + 0.55 * wm) * brain
    lesions = _lesions(wm, n_lesions, rng) if n_lesions else np.zeros_like(brain)
    intensity[lesions] = 1.0
    if skull:
        intensity = _head(brain, intensity)
    intensity, affine = _pad(intensity, affine, 40)
    lesions, _ = _pad(lesions, affine, 40)
    world_axes = nb.orientations.axcodes2ornt(axcodes)[:, 0].astype(int)
    shape = tuple(round(fov_mm[a] / voxel_mm) for a in world_axes)
    native = native_affine(voxel_mm, shape, axcodes)
    vox_to_template_vox = np.linalg.solve(affine, pose @ native)
    coords = np.indices(shape).reshape(3, -1)
    sample = vox_to_template_vox[:3, :3] @ coords + vox_to_template_vox[:3, 3:]
    flair = ndimage.map_coordinates(intensity, sample, order=1).reshape(shape)
    lesion = ndimage.map_coordinates(lesions.astype(np.float32), sample, order=1).reshape(shape)
    if bias:
        flair *= _bias_field(shape, rng)
    flair = np.abs(flair + rng.normal(0, noise, shape)).astype(np.float32) * 1000
    return Phantom(
        flair=nb.Nifti1Image(flair, native),
        lesion_mask=nb.Nifti1Image((lesion >= 0.5).astype(np.uint8), native),
        native_to_template=pose,
    )


def _bias_field(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field of about ±20 % across the field of view."""
    axes = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    gradient = sum(c * a for c, a in zip(rng.uniform(-0.2, 0.2, 3), axes, strict=True))
    return (1.0 + gradient).astype(np.float32)
