"""Per-participant min-max scaling of the brain to [0, 1], as in Eitel et al. (2019).

Voxels outside the brain mask become 0, so that a FLAIR given with its skull and the same FLAIR
given skull-stripped reach the CNN as the same input.
"""

from __future__ import annotations

import numpy as np


def minmax_scale(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Scale the brain's intensities linearly to [0, 1]; zero outside the brain.

    Parameters
    ----------
    image : numpy.ndarray of shape (X, Y, Z)
        Bias-corrected FLAIR on the CNN grid (arbitrary units).
    mask : numpy.ndarray of shape (X, Y, Z)
        Brain mask; non-zero is inside.

    Returns
    -------
    numpy.ndarray of shape (X, Y, Z), float32
        Minimum inside the brain → 0, maximum → 1; all finite.
    """
    inside = (mask > 0) & np.isfinite(image)
    if not inside.any():
        raise ValueError("the brain mask is empty: nothing to scale")
    low, high = image[inside].min(), image[inside].max()
    if high <= low:
        raise ValueError("the brain has constant intensity: min-max scaling is undefined")
    scaled = np.where(inside, (image - low) / (high - low), 0.0)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)
