"""A Nipype sink that stores one derivative file (plus its JSON sidecar) under its table name."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nb
from bids.layout import parse_file_entities
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from msxai_bids import derivatives
from msxai_bids.bids import raw_uri, required_metadata, write_sidecar
from msxai_bids.files import atomic_write


def copy_as(in_file: str, out_file: Path) -> None:
    """Copy ``in_file`` to ``out_file``, (de)compressing NIfTI when the extensions differ."""
    if in_file.endswith(".nii") != str(out_file).endswith(".nii"):
        nb.save(nb.load(in_file), out_file)
    else:
        shutil.copyfile(in_file, out_file)


class _DerivativesDataSinkInputSpec(BaseInterfaceInputSpec):
    base_directory = traits.Directory(mandatory=True, desc="root of the derivative dataset")
    source_file = File(exists=True, mandatory=True, desc="raw file this derivative comes from")
    in_file = File(exists=True, mandatory=True, desc="file to store")
    kind = traits.Enum(
        *derivatives.KINDS, mandatory=True, desc="kind of derivative (msxai_bids.derivatives)"
    )
    meta_dict = traits.Dict(
        desc="sidecar fields; a JSON sidecar is written when given or when BIDS requires one"
    )


class _DerivativesDataSinkOutputSpec(TraitedSpec):
    out_file = File(desc="stored derivative")
    out_meta = File(desc="its JSON sidecar")


class DerivativesDataSink(SimpleInterface):
    """Store ``in_file`` under ``base_directory`` as the derivative ``kind`` of ``source_file``.

    The name comes from :data:`msxai_bids.derivatives.KINDS`, with the source's entities
    (subject, session, run…, and its suffix as the contrast); the write is atomic.
    Every file BIDS requires a sidecar of (a ``res-`` image, masks included) gets one, with
    ``Sources`` and the required fields, whether or not ``meta_dict`` is given.
    """

    input_spec = _DerivativesDataSinkInputSpec
    output_spec = _DerivativesDataSinkOutputSpec
    # A rerun writes the file again even when Nipype's cache holds the node's result: the
    # output may have been deleted since (an incomplete image loses its outputs).
    _always_run = True

    def _run_interface(self, runtime):
        source = parse_file_entities(self.inputs.source_file)
        base = Path(self.inputs.base_directory)
        out_file = derivatives.path(base, self.inputs.kind, source)
        given = self.inputs.meta_dict if isdefined(self.inputs.meta_dict) else {}
        if given or required_metadata(out_file):  # the sidecar first, as in bids.write_nifti
            meta = {"Sources": [raw_uri(self.inputs.source_file)], **given}
            self._results["out_meta"] = str(write_sidecar(out_file, meta))
        atomic_write(out_file, lambda tmp: copy_as(self.inputs.in_file, tmp))
        self._results["out_file"] = str(out_file)
        return runtime
