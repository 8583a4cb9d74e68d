"""Interfaces for the native-space steps: reorientation, brain masks, N4 bias correction."""

from __future__ import annotations

import nibabel as nb
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from msxai_bids.interfaces.itk import ThreadedInputSpec, output_path, use_itk_threads


class _ReorientInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="3-D image in any stored orientation")


class _ReorientOutputSpec(TraitedSpec):
    out_file = File(desc="the same image with RAS voxel axes")


class Reorient(SimpleInterface):
    """Reorder the voxel axes of an image to RAS without resampling (nibabel)."""

    input_spec = _ReorientInputSpec
    output_spec = _ReorientOutputSpec

    def _run_interface(self, runtime):
        from msxai_bids.preprocessing.spaces import to_ras

        out_file = output_path(runtime.cwd, self.inputs.in_file, "_ras")
        nb.save(to_ras(nb.load(self.inputs.in_file)), out_file)
        self._results["out_file"] = out_file
        return runtime


class _BrainMaskInputSpec(ThreadedInputSpec):
    in_file = File(exists=True, mandatory=True, desc="native FLAIR, with or without skull")


class _BrainMaskOutputSpec(TraitedSpec):
    out_mask = File(desc="binary brain mask on the input grid")


class BrainMask(SimpleInterface):
    """A first brain mask of a FLAIR by thresholding and morphology (``preprocessing.brain``)."""

    input_spec = _BrainMaskInputSpec
    output_spec = _BrainMaskOutputSpec

    def _run_interface(self, runtime):
        use_itk_threads(self.inputs.num_threads)
        import ants

        from msxai_bids.preprocessing.brain import brain_mask

        out_mask = output_path(runtime.cwd, self.inputs.in_file, "_brainmask")
        ants.image_write(brain_mask(ants.image_read(self.inputs.in_file)), out_mask)
        self._results["out_mask"] = out_mask
        return runtime


class _TemplateBrainMaskInputSpec(ThreadedInputSpec):
    in_file = File(exists=True, mandatory=True, desc="native FLAIR, with or without skull")
    xfm = File(exists=True, mandatory=True, desc="ITK affine, template → native points")


class TemplateBrainMask(SimpleInterface):
    """Brain mask from the template's, placed by a registration (``preprocessing.brain``)."""

    input_spec = _TemplateBrainMaskInputSpec
    output_spec = _BrainMaskOutputSpec

    def _run_interface(self, runtime):
        use_itk_threads(self.inputs.num_threads)
        import ants

        from msxai_bids.preprocessing.brain import template_prior_mask

        image = ants.image_read(self.inputs.in_file, pixeltype="float")
        out_mask = output_path(runtime.cwd, self.inputs.in_file, "_templatemask")
        ants.image_write(template_prior_mask(image, self.inputs.xfm), out_mask)
        self._results["out_mask"] = out_mask
        return runtime


class _N4InputSpec(ThreadedInputSpec):
    in_file = File(exists=True, mandatory=True, desc="native FLAIR")
    mask_file = File(exists=True, mandatory=True, desc="brain mask on the same grid")
    spline_mm = traits.Float(desc="B-spline control-point spacing (mm); default: measured value")


class _N4OutputSpec(TraitedSpec):
    out_file = File(desc="bias-corrected FLAIR on the input grid")


class N4BiasCorrection(SimpleInterface):
    """N4 bias-field correction estimated at 2 mm inside the brain (``preprocessing.bias``)."""

    input_spec = _N4InputSpec
    output_spec = _N4OutputSpec

    def _run_interface(self, runtime):
        use_itk_threads(self.inputs.num_threads)
        import ants

        from msxai_bids.preprocessing.bias import SPLINE_MM, n4_correct

        spline_mm = self.inputs.spline_mm if isdefined(self.inputs.spline_mm) else SPLINE_MM
        image = ants.image_read(self.inputs.in_file, pixeltype="float")
        corrected = n4_correct(image, ants.image_read(self.inputs.mask_file), spline_mm=spline_mm)
        out_file = output_path(runtime.cwd, self.inputs.in_file, "_n4")
        ants.image_write(corrected, out_file)
        self._results["out_file"] = out_file
        return runtime
