"""Write a synthetic cohort as a BIDS dataset with lesion-mask and ground-truth derivatives.

Layout (``<S>`` only when ``sessions > 1``)::

    OUTPUT_DIR/
      dataset_description.json  README  participants.tsv  participants.json
      sub-<L>/[ses-<S>/]anat/sub-<L>[_ses-<S>]_FLAIR.nii.gz (+ .json)     (or _T1w)
      derivatives/lesions/      dataset_description.json  README
        sub-<L>/[ses-<S>/]anat/sub-<L>[_ses-<S>]_space-orig_label-lesion_mask.nii.gz (+ .json)
      derivatives/synth-truth/  dataset_description.json  README
        sub-<L>/[ses-<S>/]anat/sub-<L>[_ses-<S>]_space-MNI152NLin2009aSym_label-lesion_probseg.nii.gz
                                                                        (+ .json: the truth)

Randomness is derived from one seed: the cohort draws the order of diagnoses, each subject its
anatomy, each session its acquisition, from independent streams of ``numpy.random.SeedSequence``,
so that the same seed writes byte-identical files.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nb
import numpy as np

from msxai_bids import __version__
from msxai_bids.synth import naming
from msxai_bids.synth.anatomy import TEMPLATE_SPACE, template_tissues
from msxai_bids.synth.contrast import CONTRASTS, Contrast
from msxai_bids.synth.groups import GROUPS, TASKS, Group
from msxai_bids.synth.subject import Scan, SubjectAnatomy, acquire, draw_anatomy
from msxai_bids.synth.truth import SubjectTruth, write_truth

LOGGER = logging.getLogger(__name__)
BIDS_VERSION = "1.10.0"
_GENERATOR = {
    "Name": "msxai-synth",
    "Version": __version__,
    "Description": "Synthetic cohort generator of msxai (msxai_bids.synth)",
}
_TEMPLATE_SOURCE = {
    "URL": "https://www.bic.mni.mcgill.ca/ServicesAtlases/ICBM152NLin2009",
    "Version": "ICBM 2009a nonlinear symmetric (as bundled with nilearn)",
}


def _write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")


def _write_nifti(
    path: Path, data: np.ndarray, affine: np.ndarray, dtype=None, code: str = "scanner"
) -> None:
    """Write ``data`` with ``affine`` (mm) as both qform and sform of NIfTI ``code``.

    ``dtype`` stores float data as scaled integers (nibabel picks the scale factor).
    """
    image = nb.Nifti1Image(data, affine)
    if dtype is not None:
        image.set_data_dtype(dtype)
    image.set_qform(affine, code=code)
    image.set_sform(affine, code=code)
    image.header.set_xyzt_units("mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.to_filename(path)


def _labels(count: int, min_width: int = 2) -> list[str]:
    """Zero-padded labels ``01``, ``02``, … wide enough for ``count``."""
    width = max(min_width, len(str(count)))
    return [f"{i + 1:0{width}d}" for i in range(count)]


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name.replace(".nii.gz", ".json"))


def _write_image_and_mask(
    out: Path, subject: str, session: str | None, scan: Scan, contrast: Contrast
) -> None:
    """Raw image with its acquisition sidecar; lesion mask in the image's space."""
    image = naming.image_path(subject, session, contrast.suffix)
    _write_nifti(out / image, scan.image, scan.grid.affine)
    _write_json(_sidecar(out / image), contrast.sidecar)
    mask = (
        out / "derivatives" / naming.LESION_DERIVATIVE / naming.lesion_mask_path(subject, session)
    )
    _write_nifti(mask, scan.lesion_mask, scan.grid.affine)
    raw_uri = f"bids:raw:{image}"
    _write_json(
        _sidecar(mask),
        {
            "Type": "Lesion",
            "Description": "White-matter lesions as simulated (resampled fraction >= 0.5)",
            "SpatialReference": raw_uri,
            "Sources": [raw_uri],
        },
    )


def _write_scan_truth(
    out: Path,
    subject: str,
    session: str | None,
    anatomy: SubjectAnatomy,
    scan: Scan,
    diagnosis: str,
) -> None:
    """Template-space lesion fraction with the scan's ground truth as its sidecar."""
    relative = naming.truth_path(subject, session, ".nii.gz")
    probseg = out / "derivatives" / naming.TRUTH_DERIVATIVE / relative
    _write_nifti(probseg, anatomy.lesion, template_tissues().affine, np.uint8, code="mni")
    voxel_mm = float(np.abs(scan.grid.affine[:3, :3]).sum(axis=0)[0])
    pose = {k: getattr(scan.pose, k).tolist() for k in ("rotation_deg", "translation_mm", "scale")}
    truth = SubjectTruth(
        subject=subject,
        session=session,
        diagnosis=diagnosis,
        orientation=scan.grid.orientation,
        native_to_template=scan.pose.native_to_template(),
        lesion_volume_ml=float(scan.lesion_mask.sum()) * voxel_mm**3 / 1000.0,
        template=TEMPLATE_SPACE,
        voxel_size_mm=voxel_mm,
        shape=scan.grid.shape,
        lesion_volume_template_ml=anatomy.lesion_volume_ml,
        lesions=tuple(lesion.as_dict() for lesion in anatomy.lesions),
        atrophy=anatomy.atrophy,
        pose=pose,
        intensity_scale=scan.intensity_scale,
        noise_sigma=scan.noise_sigma,
    )
    write_truth(out, truth)


def _simulate_subject(
    out: Path,
    subject: str,
    group: Group,
    seed: np.random.SeedSequence,
    *,
    contrast: Contrast,
    native_resolution: float,
    skull: bool,
    sessions: int,
) -> dict:
    """Draw one subject, write all its sessions, return its ``participants.tsv`` row."""
    anatomy_seed, *session_seeds = seed.spawn(1 + sessions)
    rng = np.random.default_rng(anatomy_seed)
    age, sex = group.draw_age_sex(rng)
    anatomy = draw_anatomy(rng, group, contrast, skull)
    session_labels = _labels(sessions) if sessions > 1 else [None]
    for session, session_seed in zip(session_labels, session_seeds, strict=True):
        scan = acquire(np.random.default_rng(session_seed), anatomy, native_resolution, skull)
        _write_image_and_mask(out, subject, session, scan, contrast)
        _write_scan_truth(out, subject, session, anatomy, scan, group.diagnosis)
    LOGGER.info(
        "sub-%s (%s): %.2f ml of lesions", subject, group.diagnosis, anatomy.lesion_volume_ml
    )
    return {
        "participant_id": f"sub-{subject}",
        "diagnosis": group.diagnosis,
        "age": age,
        "sex": sex,
    }


def _participants_json(task: str) -> dict:
    levels = {d: GROUPS[d].description for d in TASKS[task]}
    return {
        "participant_id": {"Description": "Unique participant identifier"},
        "diagnosis": {"Description": "Diagnostic group", "Levels": levels},
        "age": {"Description": "Age at the (first) scan", "Units": "year"},
        "sex": {"Description": "Sex of the participant", "Levels": {"F": "female", "M": "male"}},
    }


def _write_participants(out: Path, rows: list[dict], task: str) -> None:
    columns = ("participant_id", "diagnosis", "age", "sex")
    lines = ["\t".join(columns)] + ["\t".join(str(row[c]) for c in columns) for row in rows]
    (out / "participants.tsv").write_text("\n".join(lines) + "\n")
    _write_json(out / "participants.json", _participants_json(task))


def _readme(settings: dict) -> str:
    options = "\n".join(f"- {key}: {value}" for key, value in settings.items())
    return f"""# Synthetic {settings["task"].upper()} cohort (msxai-synth)

Simulated MR images for testing and demonstrating msxai; no real person was scanned.

Every brain is the ICBM 2009a nonlinear symmetric template (MNI152NLin2009aSym, the copy that
ships with nilearn) with subject-specific atrophy, white-matter lesions and tissue intensities.
Each scan has its own head pose (rotation up to 10 degrees, translation up to 10 mm, scaling
up to 5 % per axis), field of view, stored voxel orientation, smooth bias field, intensity
scale and Rician noise.

Settings:
{options}

Derivatives:
- derivatives/lesions: lesion masks in each image's own space (space-orig).
- derivatives/synth-truth: per scan, the affine that maps native world coordinates (mm, RAS)
  to MNI152NLin2009aSym world coordinates, the lesions drawn (template coordinates), atrophy
  and acquisition parameters.
"""


def _derivative_description(name: str) -> dict:
    return {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [_GENERATOR],
        "DatasetLinks": {"raw": "../.."},
    }


def _write_dataset_files(out: Path, settings: dict) -> None:
    """Dataset descriptions and READMEs of the raw dataset and both derivatives."""
    _write_json(
        out / "dataset_description.json",
        {
            "Name": f"msxai synthetic {settings['task'].upper()} cohort (seed {settings['seed']})",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["msxai-synth"],
            "GeneratedBy": [_GENERATOR],
            "SourceDatasets": [_TEMPLATE_SOURCE],
        },
    )
    (out / "README").write_text(_readme(settings))
    lesions = out / "derivatives" / naming.LESION_DERIVATIVE
    _write_json(lesions / "dataset_description.json", _derivative_description("Lesion masks"))
    (lesions / "README").write_text("Simulated lesion masks in each raw image's own space.\n")
    truth = out / "derivatives" / naming.TRUTH_DERIVATIVE
    _write_json(truth / "dataset_description.json", _derivative_description("Ground truth"))
    (truth / "README").write_text(
        f"Ground truth of the simulation. Per scan, the lesion fraction on the {TEMPLATE_SPACE}\n"
        "1 mm grid (probseg) and, in its JSON sidecar, native_to_template (native world mm RAS\n"
        f"-> {TEMPLATE_SPACE} world mm RAS), the lesions drawn, atrophy and acquisition.\n"
    )


def _validate(
    n_patients: int, n_controls: int, contrast: str, task: str, resolution: float, sessions: int
) -> None:
    if n_patients < 0 or n_controls < 0 or n_patients + n_controls == 0:
        raise ValueError("need a non-negative number of patients and controls, at least one")
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {sorted(CONTRASTS)}, not {contrast!r}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, not {task!r}")
    if not 0.5 <= resolution <= 4.0:
        raise ValueError(f"native resolution must be within 0.5–4 mm, not {resolution}")
    if sessions < 1:
        raise ValueError(f"sessions must be at least 1, not {sessions}")


def make_cohort(
    out_dir: str | Path,
    *,
    n_patients: int,
    n_controls: int,
    seed: int,
    contrast: str = "FLAIR",
    task: str = "ms",
    native_resolution: float = 1.0,
    skull: bool = False,
    sessions: int = 1,
) -> Path:
    """Write a synthetic BIDS cohort of patients and controls.

    Parameters
    ----------
    out_dir : str or Path
        Dataset root; created, and must be empty if it exists.
    n_patients, n_controls : int
        Group sizes (MS/HC for ``task="ms"``, AD/CN for ``task="ad"``). Diagnoses are
        shuffled over the subject labels ``01``, ``02``, …
    seed : int
        Seed of every random draw; the same seed gives byte-identical files.
    contrast : {"FLAIR", "T1w"}
        Image contrast, and BIDS suffix of the images.
    task : {"ms", "ad"}
        ``ms``: MS patients vs healthy controls; ``ad``: the pre-training cohort,
        Alzheimer's disease vs cognitively normal.
    native_resolution : float
        Isotropic voxel size of the images in mm.
    skull : bool
        Surround the brain with meninges, skull and scalp (brain extraction then needed).
    sessions : int
        Scans per subject; above 1, each is a ``ses-<S>`` of the same brain scanned anew.

    Returns
    -------
    pathlib.Path
        The dataset root.

    Raises
    ------
    ValueError
        On invalid sizes, contrast, task, resolution or sessions.
    FileExistsError
        If ``out_dir`` exists and is not empty.
    """
    _validate(n_patients, n_controls, contrast, task, native_resolution, sessions)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    options = dict(contrast=contrast, native_resolution=native_resolution, skull=skull)
    counts = dict(patients=n_patients, controls=n_controls, sessions=sessions)
    _write_dataset_files(out, dict(task=task, seed=seed, **counts, **options))
    cohort_seed, *subject_seeds = np.random.SeedSequence(seed).spawn(1 + n_patients + n_controls)
    patient, control = TASKS[task]
    diagnoses = [patient] * n_patients + [control] * n_controls
    order = np.random.default_rng(cohort_seed).permutation(len(diagnoses))
    options.update(contrast=CONTRASTS[contrast], sessions=sessions)
    rows = [
        _simulate_subject(out, label, GROUPS[diagnoses[i]], subject_seed, **options)
        for label, i, subject_seed in zip(_labels(len(order)), order, subject_seeds, strict=True)
    ]
    _write_participants(out, rows, task)
    return out
