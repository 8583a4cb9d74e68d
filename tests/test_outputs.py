"""Names of the stored outputs (msxai_bids.derivatives, the sinks) and their BIDS validity."""

from __future__ import annotations

import json
from pathlib import Path

import ants
import nibabel as nb
import numpy as np
import pytest
from conftest import write_minimal_bids

from msxai_bids import bids, derivatives
from msxai_bids.grid import CNN_GRID
from msxai_bids.interfaces.qc import sidecar_metadata
from msxai_bids.model.modelfile import ModelCard
from msxai_bids.stages.explanation import Scan, write_scan
from msxai_bids.workflows.outputs import init_ds_preproc_wf

SPACE = "space-MNI152NLin2009cAsym_res-cnn2mm"


def _store_preprocessing(tmp_path: Path, contrast: str, metadata: dict) -> tuple[Path, Path]:
    """Run the preprocessing sinks (lesion mask and filling included) on stand-in files."""
    bids_dir = write_minimal_bids(tmp_path / "bids", {"01": [None]}, contrast)
    source = bids_dir / "sub-01" / "anat" / f"sub-01_{contrast}.nii.gz"
    out = tmp_path / "out"
    workflow = init_ds_preproc_wf(
        output_dir=out,
        source_file=str(source),
        has_lesion_mask=True,
        lesion_fill=True,
    )
    workflow.base_dir = str(tmp_path / "work")
    inputnode = workflow.get_node("inputnode")
    image = tmp_path / "image.nii.gz"
    nb.save(nb.Nifti1Image(np.zeros(CNN_GRID.shape, np.float32), CNN_GRID.affine), image)
    ants.write_transform(ants.create_ants_transform(dimension=3), str(tmp_path / "xfm.txt"))
    (tmp_path / "qc.json").write_text("{}")
    (tmp_path / "qc.png").write_bytes(b"\x89PNG")
    for field in ("preproc", "brain_mask", "lesion_mask", "lesionfilled"):
        setattr(inputnode.inputs, field, str(image))
    inputnode.inputs.xfm = str(tmp_path / "xfm.txt")
    inputnode.inputs.qc = str(tmp_path / "qc.json")
    inputnode.inputs.qc_figure = str(tmp_path / "qc.png")
    inputnode.inputs.metadata = metadata
    workflow.run()
    return bids_dir, out


@pytest.mark.parametrize("contrast", ["FLAIR", "T1w"])
def test_stored_images_keep_the_source_contrast(tmp_path, contrast):
    _, out = _store_preprocessing(tmp_path, contrast, {"SkullStripped": True})
    stored = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    anat = "sub-01/anat/sub-01_"
    assert stored == sorted(
        [
            f"{anat}{SPACE}_desc-preproc_{contrast}.nii.gz",
            f"{anat}{SPACE}_desc-preproc_{contrast}.json",
            f"{anat}{SPACE}_desc-lesionfilled_{contrast}.nii.gz",
            f"{anat}{SPACE}_desc-lesionfilled_{contrast}.json",
            f"{anat}{SPACE}_desc-brain_mask.nii.gz",
            f"{anat}{SPACE}_desc-brain_mask.json",
            f"{anat}{SPACE}_desc-lesion_mask.nii.gz",
            f"{anat}{SPACE}_desc-lesion_mask.json",
            f"{anat}{SPACE}_desc-registration_qc.json",
            f"{anat}from-{contrast}_to-MNI152NLin2009cAsym_mode-image_xfm.txt",
            f"sub-01/figures/sub-01_{SPACE}_desc-registration_{contrast}.png",
        ]
    )
    sidecar = json.loads((out / f"{anat}{SPACE}_desc-preproc_{contrast}.json").read_text())
    assert sidecar["Sources"] == [f"bids:raw:sub-01/anat/sub-01_{contrast}.nii.gz"]
    assert sidecar["Resolution"] == CNN_GRID.description and sidecar["SkullStripped"]
    mask = json.loads((out / f"{anat}{SPACE}_desc-brain_mask.json").read_text())
    assert mask == {"Sources": sidecar["Sources"], "Resolution": CNN_GRID.description}


def _write_explanation(bids_dir: Path, out: Path) -> None:
    """Store a prediction, relevance maps (grid and native) and the non-standard folders."""
    layout = bids.load_layout(bids_dir, out)
    flair = bids.collect_images(layout)[0]
    scan = Scan(
        flair=flair,
        image=derivatives.path(out, "preproc", flair.entities),
        brain_mask=None,
        lesion_mask=None,
        xfm=derivatives.path(out, "xfm", flair.entities),
    )
    card = ModelCard(positive_label="MS", negative_label="HC", weights_sha256="0" * 64)
    relevance = {"lrp-epsilon": np.zeros(CNN_GRID.shape, np.float32)}
    write_scan(out, scan, card, relevance, logit=0.5, atlases=[], model="cnnscratch")
    for folder in ("group", "models", "logs"):
        (out / folder).mkdir()
        (out / folder / "x.tsv").write_text("a\n1\n")


def test_outputs_are_valid_bids_derivatives(tmp_path):
    bids_dir, out = _store_preprocessing(tmp_path, "FLAIR", sidecar_metadata({"Dice": 0.9}))
    _write_explanation(bids_dir, out)
    bids.write_dataset_description(out, bids_dir)
    bids.validate_dataset(out)  # raises BidsInvalidError naming the errors
