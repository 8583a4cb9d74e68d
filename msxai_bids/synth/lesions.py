"""White-matter lesions: how much, where, and what shape.

Total lesion volume per subject is log-normal (its parameters per diagnosis live in
``groups``). A subject's lesions are ovoids with irregular borders, added one at a time until
that volume is reached. MS lesions sit mostly around the ventricles, with a posterior
preference, their long axis pointing away from the ventricle wall (Dawson's fingers); some are
juxtacortical and some in deep white matter. Lesions are clipped to white matter and drawn as
partial-volume fractions on the template's 1 mm grid, so that a voxel belongs to the lesion
mask when its fraction is at least one half.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from msxai_bids.synth.anatomy import Tissues, ventricle_distance_mm

_MAX_LESIONS = 400
_MAX_LESION_ML = 8.0
_MIN_LESION_ML = 0.01
_SHAPE_NOISE = 0.15

Candidates = dict[str, tuple[np.ndarray, np.ndarray]]
"""Per lesion site: candidate centre voxels (n, 3) and their probabilities (n,)."""


@dataclass(frozen=True)
class LesionLoad:
    """Log-normal distribution of a subject's total lesion volume.

    Attributes
    ----------
    median_ml : float
        Median total volume in ml.
    sigma : float
        Standard deviation of the natural logarithm of the volume.
    low_ml, high_ml : float
        Clipping range in ml.
    p_none : float
        Probability that the subject has no lesion at all.
    sites : dict of str to float
        Probability of each lesion site: ``periventricular``, ``juxtacortical``, ``deep``.
    """

    median_ml: float
    sigma: float
    low_ml: float
    high_ml: float
    p_none: float
    sites: dict[str, float]

    def draw_total_ml(self, rng: np.random.Generator) -> float:
        """Draw one subject's total lesion volume in ml (0 with probability ``p_none``)."""
        if rng.random() < self.p_none:
            return 0.0
        volume = self.median_ml * np.exp(self.sigma * rng.standard_normal())
        return float(np.clip(volume, self.low_ml, self.high_ml))


@dataclass(frozen=True)
class Lesion:
    """One ovoid lesion in template world coordinates.

    Attributes
    ----------
    center_mm : numpy.ndarray of shape (3,)
        Centre in template world mm (RAS).
    semi_axes_mm : numpy.ndarray of shape (3,)
        Semi-axis lengths in mm, the first one being the long axis.
    axes : numpy.ndarray of shape (3, 3)
        Orthonormal rows: the world direction of each semi-axis.
    site : str
        ``periventricular``, ``juxtacortical`` or ``deep``.
    """

    center_mm: np.ndarray
    semi_axes_mm: np.ndarray
    axes: np.ndarray
    site: str

    def as_dict(self) -> dict:
        """JSON-ready description (lists of floats)."""
        return {
            "site": self.site,
            "center_mm": [round(float(v), 3) for v in self.center_mm],
            "semi_axes_mm": [round(float(v), 3) for v in self.semi_axes_mm],
            "axes": [[round(float(v), 6) for v in row] for row in self.axes],
        }


def site_candidates(tissues: Tissues) -> Candidates:
    """Voxel indices where each kind of lesion may be centred, with sampling weights.

    Parameters
    ----------
    tissues : Tissues
        Template anatomy (before atrophy; the ventricles only grow by a few mm).

    Returns
    -------
    dict of str to (numpy.ndarray of shape (n, 3), numpy.ndarray of shape (n,))
        Per site, candidate voxel indices and probabilities summing to 1. Periventricular
        candidates (2–10 mm from a ventricle) weigh exp(−y/30 mm): more posterior, more likely.
    """
    distance = ventricle_distance_mm()
    z_mm = np.arange(tissues.wm.shape[2]) * tissues.affine[2, 2] + tissues.affine[2, 3]
    cerebral = (z_mm > -15.0)[np.newaxis, np.newaxis, :]
    near_cortex = ndimage.binary_dilation(tissues.gm > 0.5, iterations=2)
    masks = {
        "periventricular": (tissues.wm > 0.6) & (distance >= 2) & (distance <= 10),
        "juxtacortical": (tissues.wm > 0.5) & near_cortex & (distance > 15) & cerebral,
        "deep": (tissues.wm > 0.8) & ~near_cortex & (distance > 10) & cerebral,
    }
    candidates = {}
    for site, mask in masks.items():
        index = np.argwhere(mask)
        weight = np.ones(len(index))
        if site == "periventricular":
            y_mm = index[:, 1] * tissues.affine[1, 1] + tissues.affine[1, 3]
            weight = np.exp(-y_mm / 30.0)
        candidates[site] = (index, weight / weight.sum())
    return candidates


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly random 3×3 rotation (QR of a Gaussian matrix with sign correction)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _outward_axes(rng: np.random.Generator, voxel: np.ndarray) -> np.ndarray:
    """Axes whose first row points away from the nearest ventricle wall at ``voxel``."""
    distance = ventricle_distance_mm()
    lo = np.maximum(voxel - 1, 0)
    patch = distance[lo[0] : voxel[0] + 2, lo[1] : voxel[1] + 2, lo[2] : voxel[2] + 2]
    gradient = np.array([np.mean(np.diff(patch, axis=i)) for i in range(3)])
    if not np.all(np.isfinite(gradient)) or np.linalg.norm(gradient) == 0:
        return _random_rotation(rng)
    basis, _ = np.linalg.qr(np.column_stack([gradient, rng.standard_normal((3, 2))]))
    axes = basis.T
    axes[0] *= np.sign(axes[0] @ gradient)
    return axes if np.linalg.det(axes) > 0 else axes[[0, 2, 1]]


def draw_lesion(
    rng: np.random.Generator,
    volume_ml: float,
    site: str,
    candidates: Candidates,
    affine: np.ndarray,
) -> Lesion:
    """Draw one ovoid of ``volume_ml`` centred at a random candidate voxel of ``site``.

    The long axis is 1.2–2.2 times the two short ones; periventricular lesions point it away
    from the ventricle, others orient it at random.
    """
    index, weight = candidates[site]
    voxel = index[rng.choice(len(index), p=weight)]
    elongation = rng.uniform(1.2, 2.2)
    short = (3.0 * volume_ml * 1000.0 / (4.0 * np.pi * elongation)) ** (1.0 / 3.0)
    axes = _outward_axes(rng, voxel) if site == "periventricular" else _random_rotation(rng)
    center = affine[:3, :3] @ voxel + affine[:3, 3] + rng.uniform(-0.5, 0.5, 3)
    return Lesion(center, np.array([elongation * short, short, short]), axes, site)


def rasterise(
    lesion: Lesion, rng: np.random.Generator, shape: tuple[int, ...], affine: np.ndarray
) -> tuple[tuple[slice, ...], np.ndarray]:
    """Partial-volume fraction of ``lesion`` in its bounding box on a diagonal (RAS) grid.

    The border is perturbed by smooth noise (±15 % of the radius) and ramps over ≈ 1 mm.

    Returns
    -------
    slices : tuple of slice
        Bounding box of the lesion on the grid.
    fraction : numpy.ndarray, float32
        Lesion fraction in [0, 1] over that box.
    """
    half = np.ceil(lesion.semi_axes_mm.max() * (1.0 + 2 * _SHAPE_NOISE)) + 2
    centre_voxel = np.linalg.inv(affine)[:3, :3] @ lesion.center_mm + np.linalg.inv(affine)[:3, 3]
    lo = np.maximum(np.floor(centre_voxel - half).astype(int), 0)
    hi = np.minimum(np.ceil(centre_voxel + half).astype(int) + 1, shape)
    slices = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    grid = np.moveaxis(np.mgrid[slices], 0, -1)
    offset = grid @ affine[:3, :3].T + affine[:3, 3] - lesion.center_mm
    local = offset @ lesion.axes.T / lesion.semi_axes_mm
    radius = np.linalg.norm(local, axis=-1)
    noise = ndimage.gaussian_filter(rng.standard_normal(radius.shape), 2.0)
    radius *= 1.0 + _SHAPE_NOISE * noise / max(noise.std(), 1e-6)
    fraction = np.clip(0.5 + (1.0 - radius) * lesion.semi_axes_mm.min(), 0.0, 1.0)
    return slices, fraction.astype(np.float32)


def grow_lesions(
    rng: np.random.Generator,
    tissues: Tissues,
    load: LesionLoad,
    total_ml: float,
    candidates: Candidates,
) -> tuple[np.ndarray, list[Lesion]]:
    """Add lesions until their mask (fraction ≥ 0.5) holds ``total_ml`` on the template grid.

    Individual lesion volumes are log-normal with a median that grows with the total load
    (0.05 ml + 4 % of it), so that heavy loads come from few large, confluent lesions.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    tissues : Tissues
        Subject anatomy (after atrophy); lesions are clipped to twice the WM fraction.
    load : LesionLoad
        Gives the site probabilities.
    total_ml : float
        Target total volume in ml.
    candidates : Candidates
        Output of :func:`site_candidates`.

    Returns
    -------
    fraction : numpy.ndarray of shape tissues.wm.shape, float32
        Lesion fraction per template voxel.
    lesions : list of Lesion
        The lesions drawn, in order.
    """
    fraction = np.zeros(tissues.wm.shape, dtype=np.float32)
    lesions: list[Lesion] = []
    sites, p_sites = zip(*((s, p) for s, p in load.sites.items() if p > 0), strict=True)
    median_ml, achieved_ml = 0.05 + 0.04 * total_ml, 0.0
    voxel_ml = abs(np.linalg.det(tissues.affine[:3, :3])) / 1000.0
    while achieved_ml < total_ml and len(lesions) < _MAX_LESIONS:
        wanted = median_ml * np.exp(rng.standard_normal())
        volume = float(np.clip(min(wanted, total_ml - achieved_ml), _MIN_LESION_ML, _MAX_LESION_ML))
        site = sites[rng.choice(len(sites), p=np.asarray(p_sites) / sum(p_sites))]
        lesion = draw_lesion(rng, volume, site, candidates, tissues.affine)
        slices, new = rasterise(lesion, rng, fraction.shape, tissues.affine)
        new = np.minimum(new, np.clip(2.0 * tissues.wm[slices], 0.0, 1.0))
        before = np.count_nonzero(fraction[slices] >= 0.5)
        np.maximum(fraction[slices], new, out=fraction[slices])
        achieved_ml += (np.count_nonzero(fraction[slices] >= 0.5) - before) * voxel_ml
        lesions.append(lesion)
    return fraction, lesions
