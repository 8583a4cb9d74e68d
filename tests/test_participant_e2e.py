"""End to end through the command line: a failing participant does not stop the others."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from cnn_fixtures import seeded_network

from msxai_bids.cli.run import main
from msxai_bids.model.modelfile import ModelCard, save_model
from msxai_bids.model.network import SixtyFourNet
from msxai_bids.synth import make_cohort

SPACE = "space-MNI152NLin2009cAsym_res-cnn2mm"
MODEL = "model-model"  # the model file is tmp_path/model


@pytest.mark.slow
def test_participant_level_isolates_a_broken_flair(tmp_path, caplog):
    bids_dir = make_cohort(
        tmp_path / "bids", n_patients=2, n_controls=1, seed=3, native_resolution=2.0
    )
    broken = bids_dir / "sub-03" / "anat" / "sub-03_FLAIR.nii.gz"
    broken.write_bytes(b"not a NIfTI file")
    model = save_model(
        tmp_path / "model",
        seeded_network(SixtyFourNet),
        ModelCard(positive_label="MS", negative_label="HC"),
    )
    out = tmp_path / "out"
    code = main(
        [
            str(bids_dir),
            str(out),
            "participant",
            "--skip-bids-validation",
            "-w",
            str(tmp_path / "work"),
            "--nprocs",
            "2",
            "--omp-nthreads",
            "1",
            "--model",
            str(model),
            "--atlas",
            "JuelichWM",
        ]
    )
    assert code == 1
    for label in ("01", "02"):
        anat = out / f"sub-{label}" / "anat"
        assert (anat / f"sub-{label}_{SPACE}_desc-preproc_FLAIR.nii.gz").is_file()
        assert (
            anat / f"sub-{label}_{SPACE}_{MODEL}_stat-relevance_desc-lrpepsilon_statmap.nii.gz"
        ).is_file()
        assert (
            anat / f"sub-{label}_{MODEL}_stat-relevance_desc-lrpepsilon_statmap.nii.gz"
        ).is_file()
        table = (
            anat / f"sub-{label}_{SPACE}_{MODEL}_atlas-JuelichWM_stat-relevance_desc-lrpepsilon"
            "_statmap.tsv"
        )
        assert len(pd.read_csv(table, sep="\t")) == 19  # 18 tracts and "outside atlas"
        meta = json.loads((anat / f"sub-{label}_{SPACE}_desc-preproc_FLAIR.json").read_text())
        assert meta["Sources"] == [f"bids:raw:sub-{label}/anat/sub-{label}_FLAIR.nii.gz"]
    assert not (out / "sub-03").exists()
    rejections = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rejected")]
    assert len(rejections) == 1
    assert rejections[0].startswith(f"rejected {broken}: not a readable NIfTI image (")
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
