"""Interface for registration quality control: JSON numbers, a figure and sidecar metadata."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from msxai_bids.interfaces.itk import output_path


def sidecar_metadata(metrics: dict) -> dict:
    """Sidecar fields of the preprocessed FLAIR: grid, skull stripping, software, QC numbers."""
    import ants
    import nipype

    from msxai_bids import __version__
    from msxai_bids.grid import CNN_GRID

    return {
        "SkullStripped": True,
        "Resolution": CNN_GRID.description,
        "SoftwareVersions": (
            f"msxai {__version__}, antspyx {ants.__version__}, nipype {nipype.__version__}"
        ),
        "RegistrationQC": metrics,
    }


class _RegistrationQCInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="registered FLAIR on the CNN grid")
    mask_file = File(exists=True, mandatory=True, desc="its brain mask on the CNN grid")
    xfm = File(exists=True, mandatory=True, desc="the registration's ITK affine")
    contrast = traits.Str("FLAIR", usedefault=True, desc="the image's BIDS suffix")


class _RegistrationQCOutputSpec(TraitedSpec):
    out_json = File(desc="QC numbers, plausibility flag and reason")
    out_figure = File(desc="template edges over the registered FLAIR (PNG)")
    metadata = traits.Dict(desc="sidecar fields for the preprocessed FLAIR")


class RegistrationQC(SimpleInterface):
    """Score a registration against the template and draw its edges over the FLAIR."""

    input_spec = _RegistrationQCInputSpec
    output_spec = _RegistrationQCOutputSpec

    def _run_interface(self, runtime):
        import ants

        from msxai_bids.preprocessing.qc import plot_edges, registration_metrics
        from msxai_bids.preprocessing.registration import template_to_native_ras
        from msxai_bids.preprocessing.spaces import template_brain, template_mask

        flair = nb.load(self.inputs.in_file)
        template, mask = template_brain(), template_mask()
        metrics = registration_metrics(
            flair.get_fdata(dtype=np.float32),
            np.asanyarray(nb.load(self.inputs.mask_file).dataobj),
            template.numpy(),
            mask.numpy(),
            template_to_native_ras(self.inputs.xfm),
            contrast=self.inputs.contrast,
        )
        out_json = Path(output_path(runtime.cwd, self.inputs.in_file, "_qc", ".json"))
        out_json.write_text(json.dumps(metrics, indent=2) + "\n")
        out_figure = output_path(runtime.cwd, self.inputs.in_file, "_edges", ".png")
        plot_edges(flair, ants.to_nibabel_nifti(template * mask), out_figure)
        self._results.update(
            out_json=str(out_json), out_figure=out_figure, metadata=sidecar_metadata(metrics)
        )
        return runtime
