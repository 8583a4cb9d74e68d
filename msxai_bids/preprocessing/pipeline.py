"""The native-space steps in the workflow's order, as one function for direct calls.

``workflows/preprocessing.py`` runs the same steps as Nipype nodes (each cached on its own);
this function serves tests and benchmarks that call the pure functions without Nipype.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ants

from msxai_bids.preprocessing import registration
from msxai_bids.preprocessing.bias import n4_correct
from msxai_bids.preprocessing.brain import brain_mask, template_prior_mask


@dataclass(frozen=True)
class NativeResult:
    """What the native-space steps give the resampling onto the CNN grid.

    Attributes
    ----------
    corrected : ants.ANTsImage
        Bias-corrected scan on its own grid.
    mask : ants.ANTsImage
        Final brain mask on the same grid (template prior placed by ``xfm``).
    xfm : Path
        ITK affine, template → native points.
    """

    corrected: ants.ANTsImage
    mask: ants.ANTsImage
    xfm: Path


def register_native(image: ants.ANTsImage, folder: Path, *, seed: int = 0) -> NativeResult:
    """First mask, first registration, template-prior mask, N4, final registration, final mask.

    Parameters
    ----------
    image : ants.ANTsImage
        Native scan (RAS or any orientation), with or without skull.
    folder : Path
        Where the two transform files are written (``first_xfm.txt``, ``xfm.txt``).
    seed : int
        Seed of both registrations (``--seed``).
    """
    first = registration.register_to_template(
        image, brain_mask(image), schedule=registration.INITIAL, seed=seed
    )
    first_xfm = registration.write_itk_affine(first, Path(folder) / "first_xfm.txt")
    prior = template_prior_mask(image, first_xfm)
    corrected = n4_correct(image, prior)
    final = registration.register_to_template(corrected, prior, initial=first_xfm, seed=seed)
    xfm = registration.write_itk_affine(final, Path(folder) / "xfm.txt")
    return NativeResult(corrected=corrected, mask=template_prior_mask(image, xfm), xfm=xfm)
