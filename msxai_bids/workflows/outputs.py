"""Every derivative msxai writes, named by BIDS entities: the one place outputs are stored.

Each ``init_ds_*_wf`` takes the outputs of a processing workflow on its ``inputnode`` and
connects them to :class:`~msxai_bids.interfaces.bids.DerivativesDataSink` nodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bids.layout import BIDSFile
from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from msxai_bids import bids
from msxai_bids.grid import CNN_GRID
from msxai_bids.interfaces.bids import DerivativesDataSink

SPACE = {"space": CNN_GRID.template, "res": CNN_GRID.label}

#: outputnode fields of the preprocessing workflow, by when they exist: always, with a lesion
#: mask, with a lesion mask and ``--lesion-fill``.
PREPROC_FIELDS = ("flair_preproc", "brain_mask", "xfm", "qc_json", "qc_figure")
LESION_FIELDS = ("lesion_mask",)
FILLED_FIELDS = ("flair_filled",)

#: fields whose stored file gets the ``metadata`` input in its JSON sidecar; the other images
#: get a sidecar with the fields BIDS requires of them (see :func:`msxai_bids.bids.write_sidecar`).
WITH_SIDECAR = ("flair_preproc", "flair_filled")


def field_entities(field: str, contrast: str) -> dict[str, str]:
    """Entities of the file that stores outputnode ``field`` of an image of ``contrast``.

    Images keep the suffix of their source (``FLAIR``, or ``T1w`` for a pre-training cohort)
    and the transform names it in ``from-``, as fMRIPrep names its ``desc-preproc_T1w``.
    """
    entities = {
        "flair_preproc": {**SPACE, "desc": "preproc", "suffix": contrast},
        "brain_mask": {**SPACE, "desc": "brain", "suffix": "mask"},
        "xfm": {
            "from": contrast,
            "to": CNN_GRID.template,
            "mode": "image",
            "suffix": "xfm",
            "extension": ".txt",
        },
        "qc_json": {**SPACE, "desc": "registration", "suffix": "qc", "extension": ".json"},
        "qc_figure": {**SPACE, "desc": "registration", "suffix": contrast, "datatype": "figures"},
        "lesion_mask": {**SPACE, "desc": "lesion", "suffix": "mask"},
        "flair_filled": {**SPACE, "desc": "lesionfilled", "suffix": contrast},
    }
    return entities[field]


def output_entities(source: BIDSFile, field: str) -> dict[str, Any]:
    """Entities naming the derivative of raw image ``source`` that holds ``field``."""
    return {**bids.source_entities(source), **field_entities(field, source.entities["suffix"])}


def init_ds_preproc_wf(
    *,
    output_dir: Path,
    source_file: str,
    contrast: str,
    has_lesion_mask: bool,
    lesion_fill: bool,
    name: str = "ds_preproc_wf",
) -> pe.Workflow:
    """Store the preprocessing results of one FLAIR.

    Parameters
    ----------
    output_dir : Path
        Root of the derivative dataset.
    source_file : str
        The raw FLAIR; its subject/session/run entities name the outputs.
    contrast : str
        Its suffix (``FLAIR``, ``T1w``), kept by the stored images.
    has_lesion_mask, lesion_fill : bool
        Whether the lesion mask (and the lesion-filled FLAIR) exist and are stored.

    Inputs
    ------
    flair_preproc, brain_mask, xfm, qc_json, qc_figure, lesion_mask, flair_filled
        Files from the preprocessing workflow's outputnode.
    metadata : dict
        Sidecar fields of the preprocessed images (``Resolution``, ``SkullStripped``…).
    """
    fields = PREPROC_FIELDS
    if has_lesion_mask:
        fields += LESION_FIELDS + (FILLED_FIELDS if lesion_fill else ())
    outputs = {field: field_entities(field, contrast) for field in fields}
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=[*outputs, "metadata"]), name="inputnode")
    for field, entities in outputs.items():
        sink = pe.Node(
            DerivativesDataSink(
                base_directory=str(output_dir), source_file=source_file, entities=entities
            ),
            name=f"ds_{field}",
            run_without_submitting=True,
        )
        workflow.connect(inputnode, field, sink, "in_file")
        if field in WITH_SIDECAR:
            workflow.connect(inputnode, "metadata", sink, "meta_dict")
    return workflow
