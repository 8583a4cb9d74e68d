"""BIDS input queries and BIDS-Derivatives naming, metadata and atomic writes.

All knowledge of file names lives here: inputs are found with pybids queries, outputs are named
from BIDS entities with :func:`derivative_path`, never from hand-built strings.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from bids.layout import BIDSFile, BIDSLayout, parse_file_entities
from bids.layout.writing import build_path

from msxai_bids import __version__
from msxai_bids.config import filtered_contrast
from msxai_bids.errors import BidsInvalidError, NoInputError, NothingSelectedError
from msxai_bids.grid import CNN_GRID

LOGGER = logging.getLogger("msxai.bids")

CODE_URL = "https://github.com/msxai/msxai"
BIDS_VERSION = "1.10.0"

#: One pattern for every file msxai writes; entity order follows the BIDS specification
#: (``from``/``to``/``mode`` for transforms, ``atlas``/``stat`` as in BEP038/BEP041).
DERIVATIVE_PATTERN = (
    "sub-{subject}[/ses-{session}]/{datatype<anat|figures>|anat}/sub-{subject}[_ses-{session}]"
    "[_acq-{acquisition}][_ce-{ceagent}][_rec-{reconstruction}][_run-{run}]"
    "[_from-{from}][_to-{to}][_mode-{mode}][_space-{space}][_res-{res}][_atlas-{atlas}]"
    "[_label-{label}][_stat-{stat}][_desc-{desc}]_{suffix}{extension}"
)

#: Entities of a source file that carry over to the derivatives made from it.
SOURCE_ENTITIES = ("subject", "session", "acquisition", "ceagent", "reconstruction", "run")

#: Non-standard files in the output dataset, hidden from BIDS validators. Folders are named
#: without a trailing slash: bids-validator-deno tests a folder's path without one, so
#: ``figures/`` would not hide ``sub-01/figures``. ``stat-``/``statmap`` are BEP041, not BIDS yet.
BIDSIGNORE = (
    "logs",
    "figures",
    "models",
    "group",
    "*.html",
    "*_xfm.txt",
    "*_statmap.*",
    "*_qc.json",
    "*_predictions.tsv",
)

#: ``Resolution`` of each ``res-`` label msxai writes; BIDS requires it of every such image.
RESOLUTIONS = {CNN_GRID.label: CNN_GRID.description}

NIFTI_EXTENSIONS = (".nii", ".nii.gz")


def validator_executable() -> str:
    """Path of ``bids-validator-deno``, preferring the one installed beside this Python."""
    beside = Path(sys.executable).with_name("bids-validator-deno")
    found = str(beside) if beside.exists() else shutil.which("bids-validator-deno")
    if found is None:
        raise FileNotFoundError(
            "bids-validator-deno is not installed; install it or pass --skip-bids-validation"
        )
    return found


def validate_dataset(bids_dir: Path) -> None:
    """Run bids-validator-deno offline and raise :class:`BidsInvalidError` on any error.

    Warnings are logged, not fatal: fMRIPrep and MRIQC behave the same way.
    """
    cmd = [validator_executable(), str(bids_dir), "--format", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    try:
        issues = json.loads(proc.stdout)["issues"]["issues"]
    except (json.JSONDecodeError, KeyError) as err:
        raise BidsInvalidError(
            f"bids-validator-deno failed on {bids_dir}: {proc.stderr.strip()[:500]}"
        ) from err
    errors = [i for i in issues if i.get("severity") == "error"]
    LOGGER.info(
        "BIDS validation of %s: %d errors, %d warnings",
        bids_dir,
        len(errors),
        len(issues) - len(errors),
    )
    if errors:
        shown = "; ".join(f"{e['code']} at {e.get('location', '?')}" for e in errors[:5])
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        raise BidsInvalidError(f"{bids_dir} is not valid BIDS: {shown}{more}")


def load_layout(bids_dir: Path, output_dir: Path) -> BIDSLayout:
    """Index the raw dataset plus the derivative datasets under ``bids_dir/derivatives``.

    The output dataset itself is left out even when it lies inside ``derivatives/``.
    """
    if not (bids_dir / "dataset_description.json").is_file():
        raise NoInputError(f"{bids_dir} is not a BIDS dataset: dataset_description.json missing")
    derivatives = [
        p
        for p in sorted((bids_dir / "derivatives").glob("*"))
        if (p / "dataset_description.json").is_file() and p.resolve() != output_dir.resolve()
    ]
    return BIDSLayout(bids_dir, validate=False, derivatives=derivatives or False)


def collect_images(
    layout: BIDSLayout,
    participant_label: Iterable[str] = (),
    session_label: Iterable[str] = (),
    bids_filters: Mapping[str, Any] | None = None,
) -> list[BIDSFile]:
    """Return the raw anatomical images selected by labels and filters, sorted by path.

    These are the FLAIR images, unless the ``flair`` query of the filters sets another
    ``suffix`` (``T1w`` for a pre-training cohort). Raises :class:`NoInputError` when the
    dataset has no image of that contrast at all and :class:`NothingSelectedError` when labels
    or filters select nothing.
    """
    query = {
        "datatype": "anat",
        "extension": [".nii", ".nii.gz"],
        **(bids_filters or {}).get("flair", {}),
    }
    contrast = query["suffix"] = filtered_contrast(bids_filters or {})
    if not layout.get(scope="raw", datatype="anat", suffix=contrast, extension=query["extension"]):
        raise NoInputError(
            f"{layout.root} holds no anatomical {contrast} images (anat/*_{contrast}.nii*)"
        )
    subjects = set(layout.get_subjects(scope="raw"))
    missing = sorted(set(participant_label) - subjects)
    if missing:
        raise NothingSelectedError(
            f"participant label(s) not found in {layout.root}: {', '.join(missing)}"
        )
    if participant_label:
        query["subject"] = list(participant_label)
    if session_label:
        query["session"] = list(session_label)
    files = sorted(layout.get(scope="raw", **query), key=lambda f: f.path)
    if not files:
        raise NothingSelectedError(
            f"the labels/filters selected no {contrast} in {layout.root}: {query}"
        )
    return files


def find_lesion_mask(layout: BIDSLayout, flair: BIDSFile) -> str | None:
    """Path of the lesion mask drawn on ``flair`` in a derivative dataset, if there is one.

    Masks are ``..._label-lesion_mask.nii.gz`` in the FLAIR's own space (no ``space-``
    entity, or ``space-orig``), with the FLAIR's subject/session/acquisition/run entities.
    A plain dataset has no derivative dataset, and pybids does not know the ``label`` entity
    then, so the query is not even asked: a missing mask is normal, never an error.
    """
    if not layout.derivatives:
        LOGGER.debug("%s has no derivative datasets: no lesion masks", layout.root)
        return None
    entities = source_entities(flair)
    candidates = layout.get(
        scope="derivatives",
        suffix="mask",
        label="lesion",
        extension=[".nii", ".nii.gz"],
        **{k: v for k, v in entities.items() if k in ("subject", "session", "run")},
    )
    native = [f for f in candidates if f.entities.get("space", "orig") == "orig"]
    if len(native) > 1:
        LOGGER.warning("several lesion masks match %s; using %s", flair.path, native[0].path)
    return native[0].path if native else None


def source_entities(bids_file: BIDSFile) -> dict[str, Any]:
    """The entities of a source file that name its derivatives."""
    return {k: v for k, v in bids_file.get_entities().items() if k in SOURCE_ENTITIES}


def derivative_path(output_dir: Path, entities: Mapping[str, Any]) -> Path:
    """Path of a derivative file named by BIDS entities (``suffix`` and ``extension`` required)."""
    relative = build_path(dict(entities), [DERIVATIVE_PATTERN], strict=False)
    if relative is None:
        raise ValueError(f"cannot name a derivative from entities {dict(entities)}")
    return output_dir / relative


def sidecar_path(path: Path) -> Path:
    """The JSON sidecar of a data file: every extension replaced by ``.json``."""
    return path.with_name(path.name.split(".")[0] + ".json")


def required_metadata(path: Path) -> dict[str, Any]:
    """Sidecar fields BIDS requires of the image at ``path`` because of entities in its name.

    A ``res-`` entity obliges a ``Resolution`` sidecar field, masks included; deriving it from
    the name means no writer can forget it. Non-image files (tables, figures) need none.
    """
    entities = parse_file_entities(str(path))
    if entities.get("extension") not in NIFTI_EXTENSIONS or "res" not in entities:
        return {}
    if entities["res"] not in RESOLUTIONS:
        raise ValueError(f"{path.name}: no Resolution known for res-{entities['res']}")
    return {"Resolution": RESOLUTIONS[entities["res"]]}


def write_sidecar(path: Path, metadata: Mapping[str, Any]) -> Path:
    """Write the JSON sidecar of data file ``path``: ``metadata`` plus the required fields."""
    return write_json(sidecar_path(path), {**metadata, **required_metadata(path)})


def raw_uri(source_file: str) -> str:
    """BIDS URI (``bids:raw:sub-…``) of a raw file, for the ``Sources`` sidecar field."""
    parts = Path(source_file).parts
    start = next(i for i, part in enumerate(parts) if part.startswith("sub-"))
    return "bids:raw:" + "/".join(parts[start:])


def atomic_write(path: Path, write) -> Path:
    """Create ``path`` through ``write(tmp_path)`` and a rename, so it never exists half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=f"-{path.name}")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Atomically write a JSON file with sorted, indented keys."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def running_container() -> str | None:
    """``apptainer``/``singularity`` or ``docker`` when running inside the msxai image, else None.

    Apptainer sets ``APPTAINER_CONTAINER`` (Singularity ``SINGULARITY_CONTAINER``); the Docker
    image sets ``MSXAI_CONTAINER=docker`` itself.
    """
    if os.environ.get("APPTAINER_CONTAINER"):
        return "apptainer"
    if os.environ.get("SINGULARITY_CONTAINER"):
        return "singularity"
    return os.environ.get("MSXAI_CONTAINER") or None


def write_tsv(path: Path, table: pd.DataFrame, columns: Mapping[str, str] | None = None) -> Path:
    """Atomically write a BIDS TSV (``n/a`` for missing values); with ``columns``, a sidecar too.

    ``columns`` maps column names to descriptions for the JSON sidecar.
    """
    atomic_write(path, lambda tmp: table.to_csv(tmp, sep="\t", index=False, na_rep="n/a"))
    if columns:
        write_json(sidecar_path(path), {k: {"Description": v} for k, v in columns.items()})
    return path


def write_dataset_description(output_dir: Path, bids_dir: Path) -> Path:
    """Write the derivative ``dataset_description.json`` and ``.bidsignore`` of ``output_dir``."""
    generated_by: dict[str, Any] = {"Name": "msxai", "Version": __version__, "CodeURL": CODE_URL}
    container = running_container()
    if container:
        generated_by["Container"] = {"Type": container, "Tag": f"msxai/msxai:{__version__}"}
    description = {
        "Name": "msxai: FLAIR preprocessing, MS classification and LRP relevance maps",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated_by],
        "SourceDatasets": [{"URL": bids_dir.resolve().as_uri()}],
        "DatasetLinks": {"raw": bids_dir.resolve().as_uri()},
    }
    write_json(output_dir / "dataset_description.json", description)
    ignore = "\n".join(BIDSIGNORE) + "\n"
    return atomic_write(output_dir / ".bidsignore", lambda tmp: tmp.write_text(ignore))
