"""MR contrast: from tissue fractions to a noiseless image on the template grid.

Each voxel's signal is the fraction-weighted mean of its tissues' intensities (partial-volume
model). FLAIR: CSF is suppressed (dark), grey matter is a little brighter than white matter and
lesions are bright. T1w (MPRAGE-like, for the pre-training cohort): white matter brightest,
CSF dark, lesions hypointense. With a skull, the voxels outside the brain take the intensity
of a layered shell (meninges, inner table, marrow, outer table, scalp) by their distance to
the brain envelope.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from msxai_bids.synth.anatomy import Tissues

_SHELL_DISTANCE_MM = (0.0, 2.5, 3.5, 5.0, 6.0, 8.0, 9.0, 10.0, 11.0, 15.0, 16.5)
"""Knots of the head shell: meninges/CSF, inner table, marrow, outer table, scalp, air."""


@dataclass(frozen=True)
class Contrast:
    """Tissue intensities (arbitrary units, white matter ≈ 0.5–0.85) of one MR sequence.

    Attributes
    ----------
    suffix : str
        BIDS suffix of the images (``FLAIR`` or ``T1w``).
    csf, gm, wm, lesion : float
        Intensity of each pure tissue.
    bone, marrow, scalp : float
        Intensities of the head-shell layers (used with a skull).
    sidecar : dict
        Acquisition metadata for the image's JSON sidecar (BIDS keys, seconds, tesla).
    """

    suffix: str
    csf: float
    gm: float
    wm: float
    lesion: float
    bone: float
    marrow: float
    scalp: float
    sidecar: dict

    def jittered(self, rng: np.random.Generator, spread: float = 0.04) -> Contrast:
        """Copy with each tissue intensity scaled by 1 + N(0, ``spread``), per subject."""
        names = ("csf", "gm", "wm", "lesion")
        factors = 1.0 + spread * rng.standard_normal(len(names))
        changes = {n: getattr(self, n) * float(f) for n, f in zip(names, factors, strict=True)}
        return dataclasses.replace(self, **changes)

    def shell_profile(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Knots (mm outside the brain envelope) and intensities of the head shell."""
        values = (self.csf, self.csf, self.bone, self.bone, self.marrow, self.marrow)
        values += (self.bone, self.bone, self.scalp, self.scalp, 0.0)
        return _SHELL_DISTANCE_MM, values


CONTRASTS = {
    "FLAIR": Contrast(
        "FLAIR", csf=0.10, gm=0.62, wm=0.50, lesion=0.95, bone=0.04, marrow=0.55, scalp=0.85,
        sidecar={"MagneticFieldStrength": 3, "MRAcquisitionType": "3D", "RepetitionTime": 6.0,
                 "EchoTime": 0.388, "InversionTime": 2.1},
    ),
    "T1w": Contrast(
        "T1w", csf=0.12, gm=0.55, wm=0.85, lesion=0.42, bone=0.04, marrow=0.75, scalp=0.95,
        sidecar={"MagneticFieldStrength": 1.5, "MRAcquisitionType": "3D", "RepetitionTime": 1.9,
                 "EchoTime": 0.00255, "InversionTime": 0.9},
    ),
}  # fmt: skip
"""Sequences by BIDS suffix; acquisition values from the paper (FLAIR: VIMS, T1w: MPRAGE)."""


def render(
    tissues: Tissues,
    lesion: np.ndarray,
    contrast: Contrast,
    scalp_distance: np.ndarray | None = None,
) -> np.ndarray:
    """Noiseless image on the template grid.

    Parameters
    ----------
    tissues : Tissues
        Subject anatomy (GM, WM, CSF fractions).
    lesion : numpy.ndarray, float32
        Lesion fraction per voxel; replaces that fraction of the tissue signal.
    contrast : Contrast
        Tissue intensities.
    scalp_distance : numpy.ndarray or None
        Distance (mm) to the brain envelope (see ``anatomy.scalp_distance_mm``); when given,
        non-brain voxels get the head-shell intensity, otherwise they stay 0.

    Returns
    -------
    numpy.ndarray of tissues.gm.shape, float32
    """
    image = tissues.csf * contrast.csf + tissues.gm * contrast.gm + tissues.wm * contrast.wm
    image += lesion * (contrast.lesion - image)
    if scalp_distance is not None:
        shell = np.interp(scalp_distance, *contrast.shell_profile()).astype(np.float32)
        image += (1.0 - tissues.brain) * shell
    return image.astype(np.float32, copy=False)
