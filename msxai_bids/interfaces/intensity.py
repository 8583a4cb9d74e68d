"""Interfaces for the intensity steps on the CNN grid: min-max scaling and lesion filling."""

from __future__ import annotations

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


def _save_like(data: np.ndarray, reference: nb.Nifti1Image, out_file: str) -> str:
    """Save float32 ``data`` with ``reference``'s affine and header geometry."""
    image = nb.Nifti1Image(data.astype(np.float32), reference.affine, reference.header)
    image.set_data_dtype(np.float32)
    nb.save(image, out_file)
    return out_file


class _MinMaxScaleInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="FLAIR on the CNN grid")
    mask_file = File(exists=True, mandatory=True, desc="brain mask on the CNN grid")


class _MinMaxScaleOutputSpec(TraitedSpec):
    out_file = File(desc="brain scaled to [0, 1], zero outside")


class MinMaxScale(SimpleInterface):
    """Per-participant min-max scaling of the brain to [0, 1] (``preprocessing.intensity``)."""

    input_spec = _MinMaxScaleInputSpec
    output_spec = _MinMaxScaleOutputSpec

    def _run_interface(self, runtime):
        from msxai_bids.preprocessing.intensity import minmax_scale

        image = nb.load(self.inputs.in_file)
        mask = np.asanyarray(nb.load(self.inputs.mask_file).dataobj)
        scaled = minmax_scale(image.get_fdata(dtype=np.float32), mask)
        out_file = output_path(runtime.cwd, self.inputs.in_file, "_scaled")
        self._results["out_file"] = _save_like(scaled, image, out_file)
        return runtime


class _FillLesionsInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="FLAIR on the CNN grid (not yet scaled)")
    lesion_file = File(exists=True, mandatory=True, desc="lesion mask on the CNN grid")
    mask_file = File(exists=True, mandatory=True, desc="brain mask on the CNN grid")
    seed = traits.Int(0, usedefault=True, desc="seed of the drawn fill intensities")


class _FillLesionsOutputSpec(TraitedSpec):
    out_file = File(desc="FLAIR with lesions filled by normal-appearing white matter")


class FillLesions(SimpleInterface):
    """Valverde-style lesion filling per axial slice (``preprocessing.lesion_fill``)."""

    input_spec = _FillLesionsInputSpec
    output_spec = _FillLesionsOutputSpec

    def _run_interface(self, runtime):
        from msxai_bids.preprocessing.lesion_fill import fill_lesions, white_matter
        from msxai_bids.preprocessing.spaces import template_brain

        image = nb.load(self.inputs.in_file)
        data = image.get_fdata(dtype=np.float32)
        lesion, brain = (
            np.asanyarray(nb.load(f).dataobj)
            for f in (self.inputs.lesion_file, self.inputs.mask_file)
        )
        wm = white_matter(data, brain, template_brain().numpy())
        rng = np.random.default_rng(self.inputs.seed)
        filled = fill_lesions(data, lesion, wm, brain, rng)
        out_file = output_path(runtime.cwd, self.inputs.in_file, "_filled")
        self._results["out_file"] = _save_like(filled, image, out_file)
        return runtime
