"""Completion records: an image counts as preprocessed, or explained by a model, only when its
record says so.

A run can die anywhere (SIGKILL, a node's time limit, a full disk). Derivative files are each
written atomically, but a participant's set of files is not: a killed run leaves some of them.
So the record is written last, after every output of the image exists, and it holds what the
outputs depend on (msxai's version, the options that change them, the inputs' SHA-256). A rerun
skips an image whose record matches and whose outputs all exist, and otherwise deletes what
the image left (stale outputs and the temporary files of interrupted writes) and recomputes it.

Preprocessing keeps one record per image; each model's explanations of it keep another, its
``step`` (``model-<label>``), which also picks that model's outputs out of the image's files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from msxai_bids import __version__, derivatives
from msxai_bids.files import write_json

LOGGER = logging.getLogger("msxai.completion")

#: Folders of an image's derivatives, below its subject (and session) folder.
OUTPUT_FOLDERS = ("anat", "figures")


def sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def fingerprints(
    inputs: Mapping[str, str | Path], *options: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """What outputs depend on, once per set of ``options``: msxai's version, the options and the
    hash of each input file (``inputs`` maps a name to its path), each file hashed once."""
    hashes = {name: sha256(path) for name, path in inputs.items()}
    return [
        {"msxai_version": __version__, "options": dict(choice), "inputs": hashes}
        for choice in options
    ]


def fingerprint(inputs: Mapping[str, str | Path], options: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint of one set of ``options`` (see :func:`fingerprints`)."""
    return fingerprints(inputs, options)[0]


def record_path(output_dir: Path, source: str, step: str | None = None) -> Path:
    """The record of the raw image ``source``: ``logs/completed/<its file name>[_<step>].json``."""
    name = Path(source).name.removesuffix(".gz").removesuffix(".nii")
    if step:
        name += f"_{step}"
    return records_folder(output_dir) / f"{name}.json"


def records_folder(output_dir: Path) -> Path:
    """Where the records of ``output_dir`` are: ``logs/completed/``."""
    return output_dir / derivatives.LOGS_DIR / "completed"


def records(output_dir: Path, source: str) -> list[Path]:
    """The records of the raw image ``source`` that exist: its own, then its steps', sorted."""
    own = record_path(output_dir, source)
    steps = sorted(own.parent.glob(f"{own.stem}_*.json"))
    return [path for path in [own, *steps] if path.is_file()]


def has_records(output_dir: Path, participants: Sequence[str] = ()) -> bool:
    """Whether any image of ``participants`` (labels without ``sub-``; all when empty) has a
    record in ``output_dir``: known from a folder listing, before the dataset is indexed."""
    folder = records_folder(output_dir)
    patterns = [f"sub-{label}_*.json" for label in participants] or ["*.json"]
    return any(next(folder.glob(pattern), None) for pattern in patterns)


def image_outputs(output_dir: Path, source: str, step: str | None = None) -> list[Path]:
    """Every file in the image's derivative folders made from ``source`` (by ``step`` only:
    named ``…_<step>_…``), temporary files of interrupted writes included, sorted."""
    from bids.layout import parse_file_entities  # pybids: not before the workers' server starts

    entities = parse_file_entities(source)
    own = {key: entities.get(key) for key in derivatives.SOURCE_ENTITIES}
    folder = output_dir / f"sub-{entities['subject']}"
    if entities.get("session"):
        folder /= f"ses-{entities['session']}"
    found = []
    for kind in OUTPUT_FOLDERS:
        for path in sorted((folder / kind).glob("*")):
            name = path.name.split("-", 2)[-1] if path.name.startswith(".tmp-") else path.name
            derived = parse_file_entities(str(path.parent / name))
            mine = {k: derived.get(k) for k in own} == own
            if path.is_file() and mine and (step is None or f"_{step}_" in name):
                found.append(path)
    return found


def is_complete(
    output_dir: Path,
    source: str,
    accepted: Sequence[Mapping[str, Any]],
    step: str | None = None,
) -> bool:
    """Whether ``source`` has a record whose fingerprint is one of ``accepted`` and all the
    outputs it lists."""
    path = record_path(output_dir, source, step)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if record.get("fingerprint") not in accepted:
        LOGGER.info("%s: inputs, options or version changed since %s", Path(source).name, path)
        return False
    return all((output_dir / name).is_file() for name in record.get("outputs", []))


def pending(
    output_dir: Path,
    accepted: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    force: bool,
    done: str,
    step: str | None = None,
) -> set[str]:
    """The sources of ``accepted`` (source → fingerprints a record may hold) not complete, all
    of them with ``force``; logs how many are skipped, as ``done`` (e.g. "preprocessed")."""
    todo = {
        source
        for source, fingerprints in accepted.items()
        if force or not is_complete(output_dir, source, fingerprints, step)
    }
    if len(todo) < len(accepted):
        LOGGER.info(
            "%d image(s) already %s with these inputs and options, skipped (--force recomputes "
            "them)",
            len(accepted) - len(todo),
            done,
        )
    return todo


def clear(output_dir: Path, source: str, step: str | None = None) -> list[Path]:
    """Delete the record and every output of ``source`` (by ``step``); return what was deleted.

    Data files go before the JSON sidecars, the reverse of their writing (see
    :func:`msxai_bids.bids.write_nifti`): a task reading this folder never meets data without
    its sidecar.
    """
    outputs = image_outputs(output_dir, source, step)
    stale = [
        record_path(output_dir, source, step),
        *sorted(outputs, key=lambda p: p.suffix == ".json"),
    ]
    removed = [path for path in stale if path.exists()]
    for path in removed:
        path.unlink()
    if removed:
        LOGGER.info("%s: removed %d file(s) of an incomplete run", Path(source).name, len(removed))
    return removed


def clear_interrupted(output_dir: Path, source: str, step: str | None = None) -> list[Path]:
    """Delete the temporary files that killed writes of ``source`` (by ``step``) left."""
    stale = [p for p in image_outputs(output_dir, source, step) if p.name.startswith(".tmp-")]
    for path in stale:
        path.unlink()
    return stale


def complete(
    output_dir: Path, source: str, expected: Mapping[str, Any], step: str | None = None
) -> Path:
    """Write the record of ``source`` (by ``step``) listing the outputs that exist now."""
    return record(output_dir, source, expected, image_outputs(output_dir, source, step), step)


def record(
    output_dir: Path,
    source: str,
    expected: Mapping[str, Any],
    outputs: Sequence[Path],
    step: str | None = None,
) -> Path:
    """Write the record of ``source`` (by ``step``): its fingerprint and ``outputs``."""
    names = [str(p.relative_to(output_dir)) for p in outputs]
    return write_json(
        record_path(output_dir, source, step), {"fingerprint": dict(expected), "outputs": names}
    )
