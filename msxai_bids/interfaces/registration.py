"""Interfaces for affine registration to MNI152NLin2009cAsym and resampling onto the CNN grid."""

from __future__ import annotations

from nipype.interfaces.base import File, SimpleInterface, TraitedSpec, isdefined, traits

from msxai_bids.interfaces.itk import ThreadedInputSpec, output_path, use_itk_threads


class _RegisterInputSpec(ThreadedInputSpec):
    in_file = File(exists=True, mandatory=True, desc="bias-corrected native FLAIR")
    mask_file = File(exists=True, mandatory=True, desc="its brain mask")
    initial_xfm = File(exists=True, desc="ITK affine to start from (default: centres of mass)")
    schedule = traits.Enum("final", "initial", usedefault=True, desc="registration.FINAL/INITIAL")
    seed = traits.Int(0, usedefault=True, desc="seed of the metric's sample points (--seed)")


class _RegisterOutputSpec(TraitedSpec):
    out_xfm = File(desc="ITK affine text file, template → FLAIR points (FLAIR → MNI resampling)")


class RegisterToTemplate(SimpleInterface):
    """Seeded affine registration (Mattes MI, 2 mm) with antspyx to the template brain."""

    input_spec = _RegisterInputSpec
    output_spec = _RegisterOutputSpec

    def _run_interface(self, runtime):
        use_itk_threads(self.inputs.num_threads)
        import ants

        from msxai_bids.preprocessing import registration

        image = ants.image_read(self.inputs.in_file, pixeltype="float")
        transform = registration.register_to_template(
            image,
            ants.image_read(self.inputs.mask_file),
            schedule=getattr(registration, self.inputs.schedule.upper()),
            initial=self.inputs.initial_xfm if isdefined(self.inputs.initial_xfm) else None,
            seed=self.inputs.seed,
        )
        suffix = f"_{self.inputs.schedule}_xfm"
        out_xfm = output_path(runtime.cwd, self.inputs.in_file, suffix, ".txt")
        self._results["out_xfm"] = str(registration.write_itk_affine(transform, out_xfm))
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
