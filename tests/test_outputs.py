"""Names of the stored preprocessing outputs (msxai_bids.workflows.outputs)."""

from __future__ import annotations

import json

import nibabel as nb
import numpy as np
import pytest
from conftest import write_minimal_bids

from msxai_bids.workflows.outputs import init_ds_preproc_wf

SPACE = "space-MNI152NLin2009cAsym_res-cnn2mm"


@pytest.mark.parametrize("contrast", ["FLAIR", "T1w"])
def test_stored_images_keep_the_source_contrast(tmp_path, contrast):
    bids_dir = write_minimal_bids(tmp_path / "bids", {"01": [None]}, contrast)
    source = bids_dir / "sub-01" / "anat" / f"sub-01_{contrast}.nii.gz"
    out = tmp_path / "out"
    workflow = init_ds_preproc_wf(
        output_dir=out,
        source_file=str(source),
        contrast=contrast,
        has_lesion_mask=True,
        lesion_fill=True,
    )
    workflow.base_dir = str(tmp_path / "work")
    inputnode = workflow.get_node("inputnode")
    image = tmp_path / "image.nii.gz"
    nb.save(nb.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), image)
    (tmp_path / "xfm.txt").write_text("#Insight Transform File V1.0\n")
    (tmp_path / "qc.json").write_text("{}")
    (tmp_path / "qc.png").write_bytes(b"\x89PNG")
    for field in ("flair_preproc", "brain_mask", "lesion_mask", "flair_filled"):
        setattr(inputnode.inputs, field, str(image))
    inputnode.inputs.xfm = str(tmp_path / "xfm.txt")
    inputnode.inputs.qc_json = str(tmp_path / "qc.json")
    inputnode.inputs.qc_figure = str(tmp_path / "qc.png")
    inputnode.inputs.metadata = {"Resolution": "grid"}
    workflow.run()

    stored = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    anat = "sub-01/anat/sub-01_"
    assert stored == sorted(
        [
            f"{anat}{SPACE}_desc-preproc_{contrast}.nii.gz",
            f"{anat}{SPACE}_desc-preproc_{contrast}.json",
            f"{anat}{SPACE}_desc-lesionfilled_{contrast}.nii.gz",
            f"{anat}{SPACE}_desc-lesionfilled_{contrast}.json",
            f"{anat}{SPACE}_desc-brain_mask.nii.gz",
            f"{anat}{SPACE}_desc-lesion_mask.nii.gz",
            f"{anat}{SPACE}_desc-registration_qc.json",
            f"{anat}from-{contrast}_to-MNI152NLin2009cAsym_mode-image_xfm.txt",
            f"sub-01/figures/sub-01_{SPACE}_desc-registration_{contrast}.png",
        ]
    )
    sidecar = json.loads((out / f"{anat}{SPACE}_desc-preproc_{contrast}.json").read_text())
    assert sidecar["Sources"] == [f"bids:raw:sub-01/anat/sub-01_{contrast}.nii.gz"]
