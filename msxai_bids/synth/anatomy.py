"""Subject anatomy on the template grid: ICBM 2009a tissue maps, atrophy and a head shell.

Every synthetic subject starts from the same real anatomy, the ICBM 2009a nonlinear symmetric
template (TemplateFlow ``MNI152NLin2009aSym``) that nilearn ships with its package: a
skull-stripped T1 image and grey- and white-matter probability maps on a 197×233×189 grid of
1 mm. Cerebrospinal fluid is what is left of the brain mask. Disease changes this anatomy
before any lesion is drawn: ventricles widen into the surrounding deep grey matter (thalamus,
caudate) and white matter, hippocampi and the cortical ribbon lose grey matter to CSF.

The template is loaded once per process and its arrays are read-only; ``atrophy`` returns a
modified copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from nilearn import datasets
from scipy import ndimage

TEMPLATE_SPACE = "MNI152NLin2009aSym"
"""TemplateFlow name of the space the anatomy (and every ground-truth pose) refers to."""

_LATERAL_VENTRICLE_BOX_MM = ((-35.0, -50.0, -10.0), (35.0, 35.0, 40.0))
_THIRD_VENTRICLE_BOX_MM = ((-3.0, -28.0, -6.0), (3.0, 2.0, 18.0))
_VENTRICLE_REACH_MM = 16
_HIPPOCAMPUS_CENTRES_MM = ((-27.0, -22.0, -13.0), (27.0, -22.0, -13.0))
_HIPPOCAMPUS_SEMI_AXES_MM = (7.0, 17.0, 7.0)


@dataclass(frozen=True)
class Tissues:
    """Partial-volume tissue fractions on the template's 1 mm grid.

    Attributes
    ----------
    gm, wm, csf : numpy.ndarray of shape (197, 233, 189), float32
        Fractions of grey matter, white matter and CSF in each voxel; their sum is the brain
        fraction (1 inside the brain, 0 outside).
    affine : numpy.ndarray of shape (4, 4)
        Voxel-to-world affine (mm, RAS) of the template grid.
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    affine: np.ndarray

    @property
    def brain(self) -> np.ndarray:
        """Brain fraction per voxel, float32 array of the grid's shape."""
        return self.gm + self.wm + self.csf

    def copy(self) -> Tissues:
        """Writable copy, so that atrophy never touches the cached template."""
        return Tissues(self.gm.copy(), self.wm.copy(), self.csf.copy(), self.affine)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@lru_cache(maxsize=1)
def template_tissues() -> Tissues:
    """Load the ICBM 2009a GM, WM and CSF fractions bundled with nilearn (no download).

    Returns
    -------
    Tissues
        Read-only arrays; CSF is the template's brain mask minus GM and WM.
    """
    brain_img = datasets.load_mni152_template(resolution=1)
    inside = brain_img.get_fdata(dtype=np.float32) > 0
    gm = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32) * inside
    wm = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32) * inside
    csf = np.clip(inside - gm - wm, 0.0, 1.0, dtype=np.float32)
    return Tissues(*(_read_only(a) for a in (gm, wm, csf)), _read_only(brain_img.affine.copy()))


def box_slices(affine: np.ndarray, shape: tuple[int, ...], lo_mm, hi_mm) -> tuple[slice, ...]:
    """Voxel slices of the axis-aligned world box [lo_mm, hi_mm] on an axis-aligned RAS grid.

    Parameters
    ----------
    affine : numpy.ndarray of shape (4, 4)
        Diagonal (RAS, no rotation) voxel-to-world affine.
    shape : tuple of int
        Grid shape, used to clip the slices.
    lo_mm, hi_mm : array-like of shape (3,)
        Box corners in world mm.
    """
    inverse = np.linalg.inv(affine)
    lo = np.floor(inverse[:3, :3] @ np.asarray(lo_mm) + inverse[:3, 3]).astype(int)
    hi = np.ceil(inverse[:3, :3] @ np.asarray(hi_mm) + inverse[:3, 3]).astype(int) + 1
    return tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, shape, strict=True))


def world_coordinates(affine: np.ndarray, slices: tuple[slice, ...]) -> list[np.ndarray]:
    """World coordinates (mm) of the voxels in ``slices``, as three broadcastable 1-D arrays.

    Only valid for diagonal affines, where each world axis depends on one voxel axis.
    """
    axes = [np.arange(s.start, s.stop) * affine[i, i] + affine[i, 3] for i, s in enumerate(slices)]
    return list(np.ix_(*axes))


@lru_cache(maxsize=1)
def ventricles() -> np.ndarray:
    """Boolean mask of the lateral and third ventricles of the template.

    The lateral ventricles are the largest connected CSF region (CSF fraction > 0.5) in a
    central box; the third ventricle is the CSF of a thin midline box below them.
    """
    tissues = template_tissues()
    fluid = tissues.csf > 0.5
    central = np.zeros_like(fluid)
    central[box_slices(tissues.affine, fluid.shape, *_LATERAL_VENTRICLE_BOX_MM)] = True
    labels, _ = ndimage.label(fluid & central)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    mask = labels == np.argmax(sizes)
    third = box_slices(tissues.affine, fluid.shape, *_THIRD_VENTRICLE_BOX_MM)
    mask[third] |= fluid[third]
    return _read_only(mask)


@lru_cache(maxsize=1)
def ventricle_distance_mm() -> np.ndarray:
    """Distance (mm) of every template voxel to the nearest ventricle voxel.

    Computed within 16 mm of the ventricles' bounding box; farther voxels get +inf. Used to
    widen the ventricles and to place periventricular lesions.
    """
    mask = ventricles()
    corners = np.argwhere(mask)
    lo = np.maximum(corners.min(axis=0) - _VENTRICLE_REACH_MM, 0)
    hi = np.minimum(corners.max(axis=0) + _VENTRICLE_REACH_MM + 1, mask.shape)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    distance = np.full(mask.shape, np.inf, dtype=np.float32)
    distance[crop] = ndimage.distance_transform_edt(~mask[crop])
    return _read_only(distance)


def _move_to_csf(tissues: Tissues, weight: np.ndarray, slices: tuple[slice, ...], gm_only: bool):
    """Turn the fraction ``weight`` (array over ``slices``) of tissue into CSF, in place."""
    moved = tissues.gm[slices] * weight
    tissues.gm[slices] -= moved
    if not gm_only:
        moved_wm = tissues.wm[slices] * weight
        tissues.wm[slices] -= moved_wm
        moved += moved_wm
    tissues.csf[slices] += moved


def _enlarge_ventricles(tissues: Tissues, dilation_mm: float) -> None:
    """Move the ventricle wall ``dilation_mm`` outwards (1 mm ramp), in place."""
    distance = ventricle_distance_mm()
    reach = np.argwhere(distance < dilation_mm + 0.5)
    if len(reach) == 0:
        return
    slices = tuple(slice(a, b + 1) for a, b in zip(reach.min(0), reach.max(0), strict=True))
    weight = np.clip(dilation_mm + 0.5 - distance[slices], 0.0, 1.0)
    _move_to_csf(tissues, weight, slices, gm_only=False)


def _shrink_hippocampi(tissues: Tissues, fraction: float) -> None:
    """Remove ``fraction`` of the GM in two soft 7×17×7 mm ellipsoids, in place."""
    radii = np.asarray(_HIPPOCAMPUS_SEMI_AXES_MM)
    for centre in np.asarray(_HIPPOCAMPUS_CENTRES_MM):
        slices = box_slices(
            tissues.affine, tissues.gm.shape, centre - radii - 2, centre + radii + 2
        )
        coordinates = world_coordinates(tissues.affine, slices)
        scaled = [(c - m) / r for c, m, r in zip(coordinates, centre, radii, strict=True)]
        radius = np.sqrt(sum(s**2 for s in scaled))
        weight = fraction * np.clip(1.5 - radius, 0.0, 1.0).astype(np.float32)
        _move_to_csf(tissues, weight, slices, gm_only=True)


@lru_cache(maxsize=1)
def _sulcal_border() -> np.ndarray:
    """Weight in [0, 1] of how much each template voxel borders CSF (smoothed at 1 mm)."""
    smoothed = ndimage.gaussian_filter(template_tissues().csf, 1.0)
    return _read_only(np.clip(2.0 * smoothed, 0.0, 1.0))


def atrophy(
    tissues: Tissues,
    *,
    ventricle_dilation_mm: float = 0.0,
    hippocampal_gm_loss: float = 0.0,
    cortical_gm_loss: float = 0.0,
) -> Tissues:
    """Copy of ``tissues`` with tissue turned into CSF where disease shrinks the brain.

    Parameters
    ----------
    tissues : Tissues
        Anatomy to start from (left untouched).
    ventricle_dilation_mm : float
        How far the ventricle walls move outwards, in mm. The thalami and caudate nuclei line
        the ventricles, so they shrink as the ventricles grow (deep grey-matter atrophy).
    hippocampal_gm_loss : float
        Fraction of the grey matter lost in both hippocampal regions (Alzheimer's).
    cortical_gm_loss : float
        Fraction of the grey matter bordering CSF that is lost, widening the sulci.

    Returns
    -------
    Tissues
        Writable arrays; the brain fraction (GM + WM + CSF) is unchanged.
    """
    result = tissues.copy()
    _enlarge_ventricles(result, ventricle_dilation_mm)
    _shrink_hippocampi(result, hippocampal_gm_loss)
    if cortical_gm_loss > 0:
        _move_to_csf(result, cortical_gm_loss * _sulcal_border(), (slice(None),) * 3, True)
    return result


@lru_cache(maxsize=1)
def scalp_distance_mm() -> np.ndarray:
    """Distance (mm) of every template voxel outside the brain to a smooth brain envelope.

    The envelope is the brain mask smoothed at 4 mm, so the shell drawn from this distance
    (meninges, skull, marrow, scalp) bridges the sulci like a real skull. Computed on a 2 mm
    grid and interpolated back to 1 mm.
    """
    tissues = template_tissues()
    coarse = (tissues.brain[::2, ::2, ::2] > 0.5).astype(np.float32)
    envelope = (ndimage.gaussian_filter(coarse, 2.0) > 0.3) | (coarse > 0)
    distance = ndimage.distance_transform_edt(~envelope, sampling=2.0).astype(np.float32)
    fine = ndimage.affine_transform(
        distance, np.diag([0.5, 0.5, 0.5]), output_shape=tissues.gm.shape, order=1, mode="nearest"
    )
    return _read_only(fine)
