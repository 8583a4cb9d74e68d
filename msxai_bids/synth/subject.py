"""One synthetic subject: its anatomy in template space, and each scan of it.

A subject's brain (atrophy, lesions, tissue intensities) is drawn once; every session is a new
acquisition of that same brain with its own head pose, voxel grid, stored orientation, bias
field, intensity scale and noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from msxai_bids.synth import acquisition, anatomy, lesions
from msxai_bids.synth.contrast import Contrast, render
from msxai_bids.synth.groups import Group

_SKULL_MARGIN_MM = 16.5
_INT16_MAX = 32767


@dataclass(frozen=True)
class SubjectAnatomy:
    """A subject's noiseless image on the template grid and what was drawn to make it.

    Attributes
    ----------
    image : numpy.ndarray of shape (197, 233, 189), float32
        Noiseless MR signal (arbitrary units) on the template grid.
    lesion : numpy.ndarray of the same shape, float32
        Lesion fraction per template voxel.
    lesions : list of lesions.Lesion
        The lesions drawn.
    atrophy : dict of str to float
        ``ventricle_dilation_mm``, ``hippocampal_gm_loss``, ``cortical_gm_loss``.
    """

    image: np.ndarray
    lesion: np.ndarray
    lesions: list[lesions.Lesion]
    atrophy: dict[str, float]

    @property
    def lesion_volume_ml(self) -> float:
        """Volume (ml) of the template-grid lesion mask (fraction ≥ 0.5)."""
        voxel_ml = abs(np.linalg.det(anatomy.template_tissues().affine[:3, :3])) / 1000.0
        return float(np.count_nonzero(self.lesion >= 0.5) * voxel_ml)


@dataclass(frozen=True)
class Scan:
    """One acquisition of a subject, ready to be written.

    Attributes
    ----------
    image : numpy.ndarray of grid.shape, int16
        Magnitude image with bias, scale and Rician noise.
    lesion_mask : numpy.ndarray of grid.shape, uint8
        1 where the resampled lesion fraction is at least 0.5.
    grid : acquisition.NativeGrid
        Voxel grid and stored affine.
    pose : acquisition.Pose
        Head pose; ``pose.native_to_template()`` is the ground-truth registration.
    intensity_scale, noise_sigma : float
        Global gain and the standard deviation of the complex noise (image units).
    """

    image: np.ndarray
    lesion_mask: np.ndarray
    grid: acquisition.NativeGrid
    pose: acquisition.Pose
    intensity_scale: float
    noise_sigma: float


@lru_cache(maxsize=1)
def _lesion_sites() -> lesions.Candidates:
    """Lesion-centre candidates of the template, computed once per process."""
    return lesions.site_candidates(anatomy.template_tissues())


def draw_anatomy(
    rng: np.random.Generator, group: Group, contrast: Contrast, skull: bool
) -> SubjectAnatomy:
    """Draw atrophy, lesions and tissue intensities of one subject of ``group``.

    Parameters
    ----------
    rng : numpy.random.Generator
        The subject's own source of randomness.
    group : Group
        Diagnostic group (lesion load and atrophy ranges).
    contrast : Contrast
        Sequence; its tissue intensities are jittered by ±4 % per subject.
    skull : bool
        Draw a head shell around the brain.
    """
    atrophy = {
        "ventricle_dilation_mm": float(rng.uniform(*group.ventricle_mm)),
        "hippocampal_gm_loss": float(rng.uniform(*group.hippocampus)),
        "cortical_gm_loss": float(rng.uniform(*group.cortex)),
    }
    tissues = anatomy.atrophy(anatomy.template_tissues(), **atrophy)
    total_ml = group.load.draw_total_ml(rng)
    fraction, drawn = lesions.grow_lesions(rng, tissues, group.load, total_ml, _lesion_sites())
    shell = anatomy.scalp_distance_mm() if skull else None
    image = render(tissues, fraction, contrast.jittered(rng), shell)
    return SubjectAnatomy(image, fraction, drawn, atrophy)


@lru_cache(maxsize=2)
def head_box_mm(skull: bool) -> np.ndarray:
    """Template-world box (2, 3) holding the brain, and the head shell when ``skull``."""
    tissues = anatomy.template_tissues()
    index = np.argwhere(tissues.brain > 0.5)
    box = np.stack([index.min(0), index.max(0)]) @ tissues.affine[:3, :3].T + tissues.affine[:3, 3]
    if not skull:
        return box
    grid_box = np.stack([np.zeros(3), np.asarray(tissues.gm.shape) - 1.0])
    grid_box = grid_box @ tissues.affine[:3, :3].T + tissues.affine[:3, 3]
    return np.stack(
        [
            np.maximum(box[0] - _SKULL_MARGIN_MM, grid_box[0]),
            np.minimum(box[1] + _SKULL_MARGIN_MM, grid_box[1]),
        ]
    )


def acquire(
    rng: np.random.Generator, subject: SubjectAnatomy, voxel_mm: float, skull: bool
) -> Scan:
    """Scan ``subject`` once: random pose, grid, orientation, bias field, scale and noise.

    Parameters
    ----------
    rng : numpy.random.Generator
        This session's own source of randomness.
    subject : SubjectAnatomy
        What is scanned.
    voxel_mm : float
        Isotropic native voxel size in mm; above 1 mm, the template image is first blurred to
        that resolution so that voxels average their content instead of aliasing.
    skull : bool
        Whether the field of view must hold the head shell.
    """
    pose = acquisition.draw_pose(rng)
    native_to_template = pose.native_to_template()
    box = acquisition.head_box_in_native(head_box_mm(skull), native_to_template)
    orientation = acquisition.ORIENTATIONS[rng.integers(len(acquisition.ORIENTATIONS))]
    grid = acquisition.draw_grid(rng, box, voxel_mm, orientation)
    affine = anatomy.template_tissues().affine
    sigma = acquisition.partial_volume_sigma(voxel_mm)
    image, lesion = subject.image, subject.lesion
    if sigma > 0:
        image, lesion = (ndimage.gaussian_filter(a, sigma) for a in (image, lesion))
    signal = acquisition.resample_to_native(image, affine, grid, native_to_template)
    scale = float(rng.uniform(400.0, 2000.0))
    signal *= acquisition.bias_field(rng, grid) * np.float32(scale)
    noise_sigma = float(scale * rng.uniform(0.01, 0.025))
    noisy = acquisition.add_rician_noise(rng, signal, noise_sigma)
    stored = np.rint(np.clip(noisy, 0, _INT16_MAX)).astype(np.int16)
    return Scan(
        stored, _lesion_mask(lesion, grid, native_to_template), grid, pose, scale, noise_sigma
    )


def _lesion_mask(
    lesion: np.ndarray, grid: acquisition.NativeGrid, native_to_template: np.ndarray
) -> np.ndarray:
    """Native uint8 mask where the resampled lesion fraction is at least 0.5."""
    mask = np.zeros(grid.shape, dtype=np.uint8)
    index = np.argwhere(lesion > 0)
    if len(index) == 0:
        return mask
    affine = anatomy.template_tissues().affine
    box = np.stack([index.min(axis=0), index.max(axis=0)])
    within = acquisition.native_slices(box, affine, grid, native_to_template)
    fraction = acquisition.resample_to_native(lesion, affine, grid, native_to_template, within)
    mask[fraction >= 0.5] = 1
    return mask
