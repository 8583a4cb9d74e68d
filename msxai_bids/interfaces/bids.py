"""A Nipype sink that writes one derivative file (plus its JSON sidecar) named by BIDS entities."""

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

from msxai_bids.bids import (
    SOURCE_ENTITIES,
    atomic_write,
    derivative_path,
    raw_uri,
    required_metadata,
    write_sidecar,
)


def extension_of(path: str) -> str:
    """File extension including ``.nii.gz``-style double suffixes."""
    name = Path(path).name
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


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
    entities = traits.Dict(
        traits.Str,
        traits.Str,
        mandatory=True,
        desc="BIDS entities naming the output, incl. suffix; extension from in_file",
    )
    meta_dict = traits.Dict(
        desc="sidecar fields; a JSON sidecar is written when given or when BIDS requires one"
    )


class _DerivativesDataSinkOutputSpec(TraitedSpec):
    out_file = File(desc="stored derivative")
    out_meta = File(desc="its JSON sidecar")


class DerivativesDataSink(SimpleInterface):
    """Store ``in_file`` under ``base_directory`` with a name built from BIDS entities.

    Source entities (subject, session, run…) come from ``source_file``; the write is atomic.
    Every file BIDS requires a sidecar of (a ``res-`` image, masks included) gets one, with
    ``Sources`` and the required fields, whether or not ``meta_dict`` is given.
    """

    input_spec = _DerivativesDataSinkInputSpec
    output_spec = _DerivativesDataSinkOutputSpec

    def _run_interface(self, runtime):
        source = parse_file_entities(self.inputs.source_file)
        entities = {k: v for k, v in source.items() if k in SOURCE_ENTITIES}
        entities.update(self.inputs.entities)
        entities.setdefault("extension", extension_of(self.inputs.in_file))
        out_file = derivative_path(Path(self.inputs.base_directory), entities)
        atomic_write(out_file, lambda tmp: copy_as(self.inputs.in_file, tmp))
        self._results["out_file"] = str(out_file)
        given = self.inputs.meta_dict if isdefined(self.inputs.meta_dict) else {}
        if given or required_metadata(out_file):
            meta = {"Sources": [raw_uri(self.inputs.source_file)], **given}
            self._results["out_meta"] = str(write_sidecar(out_file, meta))
        return runtime
