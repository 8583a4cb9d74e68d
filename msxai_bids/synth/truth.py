"""Ground truth of a synthetic scan: its pose, lesions and acquisition, stored as JSON.

Each scan has one JSON file in the ``synth-truth`` derivative (see ``naming``): the sidecar of
the subject's lesion fraction on the template grid. Its central item is
``native_to_template``: the 4×4 affine that maps native world coordinates (mm, RAS, as given
by the raw image's affine) to world coordinates (mm, RAS) of the ICBM 2009a nonlinear
symmetric template (``MNI152NLin2009aSym``, the copy bundled with nilearn). The app registers
to MNI152NLin2009cAsym; both templates share MNI world coordinates up to small anatomical
differences, so this affine is the reference a linear registration should approach.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from msxai_bids.synth import naming

_DESCRIPTION = (
    "Simulated lesion fraction on the template grid; the keys below are the simulation's "
    "ground truth (native_to_template: native world mm RAS -> template world mm RAS)."
)


@dataclass(frozen=True)
class SubjectTruth:
    """What was simulated for one scan.

    Attributes
    ----------
    subject : str
        Subject label without ``sub-``.
    session : str or None
        Session label without ``ses-``, or None for a single-session cohort.
    diagnosis : str
        ``MS``/``HC`` or ``AD``/``CN``.
    orientation : str
        Axis code of the stored voxel axes (e.g. ``LPS``).
    native_to_template : numpy.ndarray of shape (4, 4)
        Native world mm (RAS) → template world mm (RAS).
    lesion_volume_ml : float
        Volume of the written native lesion mask (voxel count × voxel volume), ml.
    template : str
        TemplateFlow name of the template world.
    voxel_size_mm : float
        Native isotropic voxel size.
    shape : tuple of int
        Native image shape.
    lesion_volume_template_ml : float
        Lesion volume on the template grid, before the head's scaling and resampling.
    lesions : tuple of dict
        Each lesion's ``site``, ``center_mm`` and ``semi_axes_mm`` (template world) and
        ``axes`` (rows: world direction of each semi-axis).
    atrophy : dict
        ``ventricle_dilation_mm``, ``hippocampal_gm_loss``, ``cortical_gm_loss``.
    pose : dict
        ``rotation_deg``, ``translation_mm``, ``scale`` (see ``acquisition.Pose``).
    intensity_scale, noise_sigma : float
        Global gain and Rician noise level in image units.
    """

    subject: str
    session: str | None
    diagnosis: str
    orientation: str
    native_to_template: np.ndarray
    lesion_volume_ml: float
    template: str
    voxel_size_mm: float
    shape: tuple[int, int, int]
    lesion_volume_template_ml: float
    lesions: tuple[dict, ...] = ()
    atrophy: dict = field(default_factory=dict)
    pose: dict = field(default_factory=dict)
    intensity_scale: float = 1.0
    noise_sigma: float = 0.0

    @property
    def lesion_centers_mm(self) -> np.ndarray:
        """Lesion centres in template world mm, shape (n_lesions, 3)."""
        return np.array([lesion["center_mm"] for lesion in self.lesions]).reshape(-1, 3)

    def as_dict(self) -> dict:
        """JSON-ready dictionary (arrays become nested lists)."""
        values = dataclasses.asdict(self)
        values["native_to_template"] = np.asarray(self.native_to_template).tolist()
        values["shape"] = list(self.shape)
        values["lesions"] = list(self.lesions)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> SubjectTruth:
        """Inverse of :meth:`as_dict`; unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in known}
        kept["native_to_template"] = np.asarray(kept["native_to_template"], dtype=float)
        kept["shape"] = tuple(kept["shape"])
        kept["lesions"] = tuple(kept.get("lesions", ()))
        return cls(**kept)


def truth_file(bids_dir: str | Path, subject: str, session: str | None = None) -> Path:
    """Path of the truth JSON of one scan of the cohort at ``bids_dir``."""
    relative = naming.truth_path(subject, session)
    return Path(bids_dir) / "derivatives" / naming.TRUTH_DERIVATIVE / relative


def write_truth(bids_dir: str | Path, truth: SubjectTruth) -> Path:
    """Write ``truth`` as indented JSON where :func:`truth_file` says; return the path."""
    path = truth_file(bids_dir, truth.subject, truth.session)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"Description": _DESCRIPTION, **truth.as_dict()}
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path


def load_truth(bids_dir: str | Path, subject: str, session: str | None = None) -> SubjectTruth:
    """Read the ground truth of one scan of a synthetic cohort.

    Parameters
    ----------
    bids_dir : str or Path
        Root of the raw BIDS dataset written by ``make_cohort``.
    subject : str
        Subject label, with or without ``sub-``.
    session : str or None
        Session label, with or without ``ses-``; None for single-session cohorts.

    Raises
    ------
    FileNotFoundError
        If the cohort has no truth for that scan.
    """
    return SubjectTruth.from_dict(json.loads(truth_file(bids_dir, subject, session).read_text()))


def load_all_truths(bids_dir: str | Path) -> list[SubjectTruth]:
    """Ground truth of every scan of the cohort, sorted by file name."""
    root = Path(bids_dir) / "derivatives" / naming.TRUTH_DERIVATIVE
    paths = sorted(root.glob(f"sub-*/**/*_{naming.TRUTH_ENTITIES}_probseg.json"))
    return [SubjectTruth.from_dict(json.loads(p.read_text())) for p in paths]


def lesion_volume_summary(truths: list[SubjectTruth]) -> dict[str, dict[str, float]]:
    """Per diagnosis: number of subjects and median, min and max native lesion volume (ml).

    Only the first scan of each subject counts, so that sessions do not weigh subjects.
    """
    first: dict[str, SubjectTruth] = {}
    for truth in sorted(truths, key=lambda t: (t.subject, t.session or "")):
        first.setdefault(truth.subject, truth)
    volumes: dict[str, list[float]] = {}
    for truth in first.values():
        volumes.setdefault(truth.diagnosis, []).append(truth.lesion_volume_ml)
    return {
        diagnosis: {
            "n": len(values),
            "median_ml": float(np.median(values)),
            "min_ml": float(np.min(values)),
            "max_ml": float(np.max(values)),
        }
        for diagnosis, values in sorted(volumes.items())
    }
