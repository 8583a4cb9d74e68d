"""BIDS input queries, validation, and the metadata and tables of BIDS-Derivatives.

Inputs are found with pybids queries; outputs are named by the table in
:mod:`msxai_bids.derivatives`. Here is what BIDS asks of the files themselves: sidecars and
their required fields, TSV conventions, the dataset description and ``.bidsignore``.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nb
import pandas as pd
from bids.layout import BIDSFile, BIDSLayout, parse_file_entities
from bids.layout.models import Config as EntityConfig

from msxai_bids import __version__, derivatives
from msxai_bids.config import filtered_contrast
from msxai_bids.errors import BidsInvalidError, NoInputError, NothingSelectedError, UsageError
from msxai_bids.files import atomic_write, write_json
from msxai_bids.grid import CNN_GRID

LOGGER = logging.getLogger("msxai.bids")

CODE_URL = "https://github.com/msxai/msxai"
BIDS_VERSION = "1.10.0"

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


#: The queries a ``--bids-filter-file`` may hold: msxai reads one image per participant.
FILTER_QUERIES = ("flair",)


def check_filters(bids_filters: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse queries and entities pybids would ignore or fail on, naming the likely intent.

    pybids raises on an unknown entity only deep inside a query, and msxai would silently skip
    an unknown query name: both are usage errors (64), found before anything runs.
    """
    for query, filters in bids_filters.items():
        if query not in FILTER_QUERIES:
            raise UsageError(
                f"--bids-filter-file: unknown query {query!r}; msxai reads {FILTER_QUERIES}"
            )
        known = set(EntityConfig.load("bids").entities)
        for entity in filters:
            if entity not in known:
                close = difflib.get_close_matches(entity, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UsageError(
                    f"--bids-filter-file: {query!r} filters on unknown entity {entity!r}{hint}"
                )


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
    return {k: v for k, v in bids_file.get_entities().items() if k in derivatives.SOURCE_ENTITIES}


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


def explained_heatmaps(
    output_dir: Path, flairs: Sequence[BIDSFile]
) -> list[tuple[Path, dict[str, Any]]]:
    """The heatmaps in OUT of ``flairs``, each with its sidecar's metadata.

    SLURM array tasks share OUT, and one participant's task reads the others' heatmaps. A
    heatmap its own task deletes (to recompute it) between the listing and the reading is left
    out, as a listing a moment later would leave it.
    """
    found = []
    for flair in flairs:
        for path in derivatives.KINDS["heatmap"].glob(output_dir, flair.entities):
            try:
                found.append((path, json.loads(sidecar_path(path).read_text())))
            except FileNotFoundError:
                continue
    return found


def write_sidecar(path: Path, metadata: Mapping[str, Any]) -> Path:
    """Write the JSON sidecar of data file ``path``: ``metadata`` plus the required fields."""
    return write_json(sidecar_path(path), {**metadata, **required_metadata(path)})


def write_nifti(path: Path, image: nb.Nifti1Image, metadata: Mapping[str, Any]) -> Path:
    """Atomically write a NIfTI image and its sidecar (``metadata`` plus required fields).

    The sidecar comes first, as in every writer here: array tasks share OUT, and a task that
    finds another participant's image (for the reports' colour scales) reads its sidecar too.
    """
    write_sidecar(path, metadata)
    return atomic_write(path, lambda tmp: nb.save(image, tmp))


def raw_uri(source_file: str) -> str:
    """BIDS URI (``bids:raw:sub-…``) of a raw file, for the ``Sources`` sidecar field."""
    parts = Path(source_file).parts
    start = next(i for i, part in enumerate(parts) if part.startswith("sub-"))
    return "bids:raw:" + "/".join(parts[start:])


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


def read_tsv(path: Path) -> pd.DataFrame:
    """Read a table written by :func:`write_tsv` (``n/a`` read as missing)."""
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)


def write_tsv(path: Path, table: pd.DataFrame, columns: Mapping[str, str] | None = None) -> Path:
    """Atomically write a BIDS TSV (``n/a`` for missing values); with ``columns``, a sidecar too.

    ``columns`` maps column names to descriptions for the JSON sidecar.
    """
    if columns:  # first, as in write_nifti
        write_json(sidecar_path(path), {k: {"Description": v} for k, v in columns.items()})
    return atomic_write(path, lambda tmp: table.to_csv(tmp, sep="\t", index=False, na_rep="n/a"))


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
    ignore = "\n".join(derivatives.bidsignore()) + "\n"
    return atomic_write(output_dir / ".bidsignore", lambda tmp: tmp.write_text(ignore))
