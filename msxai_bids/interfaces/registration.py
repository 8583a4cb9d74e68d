"""Interfaces for affine registration to MNI152NLin2009cAsym and resampling onto the CNN grid."""

from __future__ import annotations

from nipype.interfaces.base import File, SimpleInterface, TraitedSpec, traits

from msxai_bids.interfaces.itk import ThreadedInputSpec, output_path, use_itk_threads


class _RegisterInputSpec(ThreadedInputSpec):
    in_file = File(exists=True, mandatory=True, desc="bias-corrected native FLAIR")
    mask_file = File(exists=True, mandatory=True, desc="its brain mask")


class _RegisterOutputSpec(TraitedSpec):
    out_xfm = File(desc="ITK affine text file, template → FLAIR points (FLAIR → MNI resampling)")


class RegisterToTemplate(SimpleInterface):
    """Affine (12 parameters, Mattes MI, 2 mm) registration with antspyx to the template brain."""

    input_spec = _RegisterInputSpec
    output_spec = _RegisterOutputSpec

    def _run_interface(self, runtime):
        use_itk_threads(self.inputs.num_threads)
        import ants

        from msxai_bids.preprocessing.registration import register_to_template, write_itk_affine

        image = ants.image_read(self.inputs.in_file, pixeltype="float")
        transform = register_to_template(image, ants.image_read(self.inputs.mask_file))
        out_xfm = output_path(runtime.cwd, self.inputs.in_file, "_xfm", ".txt")
        self._results["out_xfm"] = str(write_itk_affine(transform, out_xfm))
        return runtime


class _ResampleInputSpec(ThreadedInputSpec):
    in_file = File(exists=True, mandatory=True, desc="native image")
    xfm = File(exists=True, mandatory=True, desc="ITK affine from RegisterToTemplate")
    is_mask = traits.Bool(False, usedefault=True, desc="binary: trilinear then threshold 0.5")


class _ResampleOutputSpec(TraitedSpec):
    out_file = File(desc="image on the CNN grid (96×114×96, 2 mm)")


class ResampleToGrid(SimpleInterface):
    """Resample a native image or mask onto ``grid.CNN_GRID`` with the registration's affine."""

    input_spec = _ResampleInputSpec
    output_spec = _ResampleOutputSpec

    def _run_interface(self, runtime):
        use_itk_threads(self.inputs.num_threads)
        import ants

        from msxai_bids.preprocessing.resampling import mask_to_grid, to_grid

        image = ants.image_read(self.inputs.in_file, pixeltype="float")
        resample = mask_to_grid if self.inputs.is_mask else to_grid
        out_file = output_path(runtime.cwd, self.inputs.in_file, "_grid")
        ants.image_write(resample(image, self.inputs.xfm), out_file)
        self._results["out_file"] = out_file
        return runtime
