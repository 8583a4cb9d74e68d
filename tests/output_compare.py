"""Comparing two output folders as a user would: same derivative files, same content."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import nibabel as nb
import numpy as np


def derivative_files(root: Path) -> set[str]:
    """Every file under ``root`` but logs, reports and their figures (these name the run)."""
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file()
        and "logs" not in p.relative_to(root).parts
        and "figures" not in p.parts
        and p.suffix != ".html"
    }


def same_content(a: Path, b: Path) -> bool:
    """Equal voxels and affine for images, equal documents for JSON, equal bytes otherwise."""
    if a.name.endswith(".nii.gz"):
        one, other = nb.load(a), nb.load(b)
        return np.array_equal(one.affine, other.affine) and np.array_equal(
            one.get_fdata(), other.get_fdata()
        )
    if a.suffix == ".json":
        return json.loads(a.read_text()) == json.loads(b.read_text())
    return filecmp.cmp(a, b, shallow=False)
