"""BIDS names of the files a synthetic cohort holds, built from subject and session labels.

Raw images: ``sub-<L>[/ses-<S>]/anat/sub-<L>[_ses-<S>]_<suffix>.nii.gz``.
Lesion masks (BIDS-Derivatives "Masks", in the raw image's own space, hence ``space-orig``):
``derivatives/lesions/sub-<L>[/ses-<S>]/anat/sub-<L>[_ses-<S>]_space-orig_label-lesion_mask.nii.gz``.
Ground truth: ``derivatives/synth-truth/sub-<L>[/ses-<S>]/anat/
sub-<L>[_ses-<S>]_space-MNI152NLin2009aSym_label-lesion_probseg.nii.gz``, the lesion fraction on
the template grid, whose JSON sidecar holds the rest of the truth (pose, lesions, acquisition).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from msxai_bids.synth.anatomy import TEMPLATE_SPACE

LESION_DERIVATIVE = "lesions"
TRUTH_DERIVATIVE = "synth-truth"
LESION_ENTITIES = "space-orig_label-lesion"
TRUTH_ENTITIES = f"space-{TEMPLATE_SPACE}_label-lesion"


def strip_prefix(label: str, prefix: str) -> str:
    """``"sub-01"`` → ``"01"`` (labels are accepted with or without their BIDS prefix)."""
    return label[len(prefix) :] if label.startswith(prefix) else label


def scan_stem(subject: str, session: str | None) -> str:
    """File-name stem of one scan, e.g. ``sub-01_ses-2``."""
    stem = f"sub-{strip_prefix(subject, 'sub-')}"
    return f"{stem}_ses-{strip_prefix(session, 'ses-')}" if session else stem


def anat_folder(subject: str, session: str | None) -> PurePosixPath:
    """Folder of a scan's anatomical files relative to a dataset root."""
    folder = PurePosixPath(f"sub-{strip_prefix(subject, 'sub-')}")
    if session:
        folder /= f"ses-{strip_prefix(session, 'ses-')}"
    return folder / "anat"


def image_path(subject: str, session: str | None, suffix: str) -> PurePosixPath:
    """Raw image path relative to the raw dataset root."""
    return anat_folder(subject, session) / f"{scan_stem(subject, session)}_{suffix}.nii.gz"


def lesion_mask_path(subject: str, session: str | None) -> PurePosixPath:
    """Lesion-mask path relative to the lesion derivative's root."""
    name = f"{scan_stem(subject, session)}_{LESION_ENTITIES}_mask.nii.gz"
    return anat_folder(subject, session) / name


def truth_path(subject: str, session: str | None, extension: str = ".json") -> PurePosixPath:
    """Ground-truth path relative to the truth derivative's root.

    ``extension=".json"`` gives the sidecar holding the truth, ``".nii.gz"`` the template-space
    lesion fraction it describes.
    """
    name = f"{scan_stem(subject, session)}_{TRUTH_ENTITIES}_probseg{extension}"
    return anat_folder(subject, session) / name
