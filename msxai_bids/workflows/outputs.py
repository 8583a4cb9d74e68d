"""Every derivative msxai writes, named by BIDS entities: the one place outputs are stored.

Each ``init_ds_*_wf`` takes the outputs of a processing workflow on its ``inputnode`` and
connects them to :class:`~msxai_bids.interfaces.bids.DerivativesDataSink` nodes.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from msxai_bids.grid import CNN_GRID
from msxai_bids.interfaces.bids import DerivativesDataSink

SPACE = {"space": CNN_GRID.template, "res": CNN_GRID.label}

#: outputnode field of the preprocessing workflow → entities of the stored file.
PREPROC_OUTPUTS = {
    "flair_preproc": {**SPACE, "desc": "preproc", "suffix": "FLAIR"},
    "brain_mask": {**SPACE, "desc": "brain", "suffix": "mask"},
    "xfm": {
        "from": "FLAIR",
        "to": CNN_GRID.template,
        "mode": "image",
        "suffix": "xfm",
        "extension": ".txt",
    },
    "qc_json": {**SPACE, "desc": "registration", "suffix": "qc", "extension": ".json"},
    "qc_figure": {**SPACE, "desc": "registration", "suffix": "FLAIR", "datatype": "figures"},
}
LESION_OUTPUTS = {"lesion_mask": {**SPACE, "desc": "lesion", "suffix": "mask"}}
FILLED_OUTPUTS = {"flair_filled": {**SPACE, "desc": "lesionfilled", "suffix": "FLAIR"}}

#: fields whose stored file gets a JSON sidecar from the ``metadata`` input.
WITH_SIDECAR = ("flair_preproc", "flair_filled")


def init_ds_preproc_wf(
    *,
    output_dir: Path,
    source_file: str,
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
    has_lesion_mask, lesion_fill : bool
        Whether the lesion mask (and the lesion-filled FLAIR) exist and are stored.

    Inputs
    ------
    flair_preproc, brain_mask, xfm, qc_json, qc_figure, lesion_mask, flair_filled
        Files from the preprocessing workflow's outputnode.
    metadata : dict
        Sidecar fields of the preprocessed images (``Resolution``, ``SkullStripped``…).
    """
    outputs = dict(PREPROC_OUTPUTS)
    if has_lesion_mask:
        outputs.update(LESION_OUTPUTS)
        if lesion_fill:
            outputs.update(FILLED_OUTPUTS)
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
