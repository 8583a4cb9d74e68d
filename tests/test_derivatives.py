"""The table of derivative kinds: distinct names, entities pybids reads back, a .bidsignore."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from bids.layout import parse_file_entities

from msxai_bids import derivatives

SOURCE = {"subject": "01", "session": "a", "run": 2, "suffix": "FLAIR", "datatype": "anat"}
VALUES = {
    "method": "lrpepsilon",
    "atlas": "JHU",
    "model": "cnnscratch",
    "trial": "01",
    "cohort": "patients",
}


def all_paths(source=SOURCE) -> dict[str, Path]:
    return {
        name: derivatives.path(Path("out"), name, source, **VALUES) for name in derivatives.KINDS
    }


def test_every_kind_has_a_name_of_its_own():
    paths = list(all_paths().values())
    assert len(set(paths)) == len(paths) == len(derivatives.KINDS)


def test_participant_files_carry_the_source_entities_and_contrast():
    for name, path in all_paths({**SOURCE, "suffix": "T1w"}).items():
        if derivatives.KINDS[name].pattern != derivatives.PARTICIPANT_PATTERN:
            continue
        entities = parse_file_entities(str(path))
        assert (entities["subject"], entities["session"], entities["run"]) == ("01", "a", 2)
        assert "FLAIR" not in path.name
    assert all_paths({**SOURCE, "suffix": "T1w"})["preproc"].name.endswith(
        "desc-preproc_T1w.nii.gz"
    )


def test_bidsignore_hides_exactly_the_kinds_bids_does_not_define():
    patterns = derivatives.bidsignore()
    for name, path in all_paths().items():
        parts = path.relative_to("out").parts
        hidden = any(fnmatch.fnmatch(part, p) for part in parts for p in patterns)
        assert hidden == (not derivatives.KINDS[name].in_bids), name


def test_find_takes_compressed_or_plain_nifti_and_none_when_missing(tmp_path):
    assert derivatives.find(tmp_path, "preproc", SOURCE) is None
    plain = derivatives.path(tmp_path, "preproc", SOURCE).with_suffix("")
    plain.parent.mkdir(parents=True)
    nb.save(nb.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), plain)
    assert derivatives.find(tmp_path, "preproc", SOURCE) == plain


def test_a_name_needs_its_values():
    with pytest.raises(KeyError):
        derivatives.path(Path("out"), "heatmap", SOURCE)
