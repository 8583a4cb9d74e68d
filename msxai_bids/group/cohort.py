"""The labelled images the group level trains on: labels from ``participants.tsv``, images from OUT.

One row per raw FLAIR (a subject may have several sessions or runs), with the derivatives the
participant level wrote for it, found through the table of :mod:`msxai_bids.derivatives`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from bids.layout import BIDSFile

from msxai_bids import derivatives
from msxai_bids.errors import NoInputError, UsageError
from msxai_bids.preprocessing.qc import read_qc

LOGGER = logging.getLogger("msxai.group")


@dataclass(frozen=True)
class Labels:
    """The label column of ``participants.tsv`` and its positive and negative values."""

    column: str = "diagnosis"
    positive: str = "MS"
    negative: str = "HC"


def read_labels(bids_dir: Path, column: str, positive: str, negative: str) -> pd.Series:
    """Targets of the labelled participants: 1 for ``positive``, 0 for ``negative``.

    Parameters
    ----------
    bids_dir : Path
        Dataset holding ``participants.tsv``.
    column, positive, negative : str
        Label column and its two values; participants with any other value (``n/a``, another
        diagnosis) are left out.

    Returns
    -------
    Series
        Index ``participant_id`` (``sub-<L>``), values 0/1.
    """
    table_path = bids_dir / "participants.tsv"
    if not table_path.is_file():
        raise NoInputError(f"{table_path} is missing: the group level needs diagnostic labels")
    table = pd.read_csv(table_path, sep="\t", dtype=str, keep_default_na=False)
    if column not in table.columns:
        raise UsageError(
            f"--label-column {column!r} is not a column of {table_path} "
            f"(columns: {', '.join(table.columns)})"
        )
    values = table.set_index("participant_id")[column].str.strip()
    for label in (positive, negative):
        if not (values == label).any():
            found = ", ".join(sorted(set(values)))
            raise UsageError(f"no participant has {column} = {label!r} (values: {found})")
    known = values.isin([positive, negative])
    kept = values[known]
    LOGGER.info(
        "labels from %s: %d %s, %d %s",
        column,
        (kept == positive).sum(),
        positive,
        (kept == negative).sum(),
        negative,
    )
    if not known.all():
        LOGGER.warning("%s", left_out_message(values[~known], column, positive, negative))
    return (kept == positive).astype(int)


def left_out_message(others: pd.Series, column: str, positive: str, negative: str) -> str:
    """Which participants the labels leave out, counted per value (``ms``, ``RRMS``, empty)."""
    counts = others.replace("", "(empty)").value_counts().sort_index()
    values = ", ".join(f"{value!r} × {n}" for value, n in counts.items())
    who = ", ".join(others.index[:10]) + (", …" if len(others) > 10 else "")
    return (
        f"{len(others)} participant(s) left out: {column} is neither {positive!r} nor "
        f"{negative!r} but {values} ({who}); set --positive-label/--negative-label to use them"
    )


def label_description(bids_dir: Path, column: str) -> dict:
    """The entry of ``column`` in ``participants.json`` (empty when undescribed).

    ``participants.json`` is only recommended by BIDS, so a dataset without it is normal.
    """
    sidecar = bids_dir / "participants.json"
    if not sidecar.is_file():
        LOGGER.info("no %s: the label column %r is undescribed", sidecar, column)
        return {}
    return json.loads(sidecar.read_text()).get(column, {})


def image_table(
    output_dir: Path, flairs: list[BIDSFile], targets: pd.Series, *, lesion_filled: bool
) -> pd.DataFrame:
    """One row per labelled FLAIR with its derivatives; refuses FLAIRs without an input image.

    Returns
    -------
    DataFrame
        Columns ``source`` (raw FLAIR, relative to the dataset), ``participant_id``,
        ``session_id`` (``n/a`` without sessions), ``target``, ``image`` (what the models see:
        preprocessed or lesion-filled FLAIR), ``lesion_mask``, ``brain_mask`` and ``qc`` (the
        registration QC; None when absent), sorted by ``source``.
    """
    kind = "lesionfilled" if lesion_filled else "preproc"
    rows = []
    for flair in flairs:
        subject = f"sub-{flair.entities['subject']}"
        if subject not in targets.index:
            continue
        session = flair.entities.get("session")
        rows.append(
            {
                "source": flair.relpath,
                "participant_id": subject,
                "session_id": f"ses-{session}" if session else "n/a",
                "target": int(targets[subject]),
                "image": derivatives.find(output_dir, kind, flair.entities),
                "lesion_mask": derivatives.find(output_dir, "lesion_mask", flair.entities),
                "brain_mask": derivatives.find(output_dir, "brain_mask", flair.entities),
                "qc": derivatives.find(output_dir, "qc", flair.entities),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        raise NoInputError("none of the selected images belongs to a labelled participant")
    missing = table.loc[table["image"].isna(), "source"].tolist()
    if missing:
        what = "lesion-filled" if lesion_filled else "preprocessed"
        raise NoInputError(
            f"{len(missing)} labelled image(s) have no {what} image in {output_dir} "
            f"(run the participant level{' with --lesion-fill' if lesion_filled else ''} "
            f"first): {', '.join(missing)}"
        )
    return table.sort_values("source", ignore_index=True)


def registration_plausible(qc: Path | None) -> object:
    """The ``plausible`` flag of a registration QC file, or missing without one."""
    return read_qc(qc).get("plausible", pd.NA)


def without_flagged(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (with a ``qc`` column) less the images whose QC is flagged.

    A model trained on misregistered heads, or on another contrast, learns that, so they are
    left out, each named with the QC's reason; an image without a QC file is kept.
    """
    records = table["qc"].map(read_qc)
    flagged = records.map(lambda record: record.get("plausible") is False).astype(bool)
    if not flagged.any():
        return table
    reasons = [
        f"{source} ({record['reason']})"
        for source, record in zip(table.loc[flagged, "source"], records[flagged], strict=True)
    ]
    LOGGER.warning(
        "%d image(s) left out: the participant level's QC flagged them as implausible: %s; "
        "--include-flagged uses them",
        len(reasons),
        "; ".join(reasons),
    )
    return table[~flagged].reset_index(drop=True)
