"""The sinks that store the preprocessing results of one image as BIDS derivatives.

Names come from :data:`msxai_bids.derivatives.KINDS`; the outputnode fields of the
preprocessing workflow are the names of the kinds they fill.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from msxai_bids.interfaces.bids import DerivativesDataSink

#: The kinds preprocessing writes: always, with a lesion mask, with a lesion mask and
#: ``--lesion-fill``.
PREPROC_KINDS = ("preproc", "brain_mask", "xfm", "qc", "qc_figure")
LESION_KINDS = ("lesion_mask",)
FILLED_KINDS = ("lesionfilled",)

#: Kinds whose sidecar gets the ``metadata`` input; the other images get a sidecar with the
#: fields BIDS requires of them (see :func:`msxai_bids.bids.write_sidecar`).
WITH_METADATA = ("preproc", "lesionfilled")


def stored_kinds(*, has_lesion_mask: bool, lesion_fill: bool) -> tuple[str, ...]:
    """The kinds stored for one image, given its lesion mask and ``--lesion-fill``."""
    if not has_lesion_mask:
        return PREPROC_KINDS
    return PREPROC_KINDS + LESION_KINDS + (FILLED_KINDS if lesion_fill else ())


def init_ds_preproc_wf(
    *,
    output_dir: Path,
    source_file: str,
    has_lesion_mask: bool,
    lesion_fill: bool,
    name: str = "ds_preproc_wf",
) -> pe.Workflow:
    """Store the preprocessing results of one image.

    Parameters
    ----------
    output_dir : Path
        Root of the derivative dataset.
    source_file : str
        The raw image; its subject/session/run entities and suffix name the outputs.
    has_lesion_mask, lesion_fill : bool
        Whether the lesion mask (and the lesion-filled image) exist and are stored.

    Inputs
    ------
    preproc, brain_mask, xfm, qc, qc_figure, lesion_mask, lesionfilled
        Files from the preprocessing workflow's outputnode.
    metadata : dict
        Sidecar fields of the preprocessed images (``SkullStripped``, versions, QC…).
    """
    kinds = stored_kinds(has_lesion_mask=has_lesion_mask, lesion_fill=lesion_fill)
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=[*kinds, "metadata"]), name="inputnode")
    for kind in kinds:
        sink = pe.Node(
            DerivativesDataSink(base_directory=str(output_dir), source_file=source_file, kind=kind),
            name=f"ds_{kind}",
            run_without_submitting=True,
        )
        workflow.connect(inputnode, kind, sink, "in_file")
        if kind in WITH_METADATA:
            workflow.connect(inputnode, "metadata", sink, "meta_dict")
    return workflow
