"""The logit of an edited volume, kept up to date by recomputing the early layers in windows."""

from __future__ import annotations

import numpy as np
import torch
from cnn_fixtures import SMALL_SHAPE, brain_like_volume, seeded_network

from msxai_bids.model.edits import EditedVolume
from msxai_bids.model.network import FastSixtyFourNet


def test_the_logit_of_an_edited_volume_equals_a_full_forward_pass_after_every_edit():
    """Edits of every kind: one voxel, cubes at the corners and edges of the volume, a slab
    that is not a cube, several regions at once, and so many that the whole volume is
    recomputed; float64, so that a stale early output would show far above rounding."""
    network = seeded_network(FastSixtyFourNet, seed=5, dtype=torch.float64)
    volume = brain_like_volume(seed=5, shape=SMALL_SHAPE, dtype=torch.float64)[0, 0].numpy()
    original = volume.copy()
    edited = EditedVolume(network, volume)
    rng = np.random.default_rng(5)
    X, Y, Z = SMALL_SHAPE
    edits = [
        [(slice(30, 31), slice(40, 41), slice(20, 21))],
        [(slice(0, 4), slice(0, 4), slice(0, 4))],
        [(slice(X - 4, X), slice(Y - 4, Y), slice(Z - 4, Z))],
        [(slice(8, 12), slice(Y - 3, Y), slice(36, 40))],
        [(slice(20, 22), slice(10, 50), slice(40, 43))],
        [
            (slice(a, a + 4), slice(b, b + 4), slice(c, c + 4))
            for a, b, c in rng.integers(0, 60, (9, 3))
        ],
        [
            (slice(a, a + 4), slice(b, b + 4), slice(c, c + 4))
            for a, b, c in rng.integers(0, 60, (400, 3))
        ],
    ]
    expected_volume = volume.copy()
    for step, boxes in enumerate(edits):
        where = np.zeros(SMALL_SHAPE, bool)
        for box in boxes:
            where[box] = True
        value = float(rng.uniform(0.0, 2.0))
        edited.replace(where, value, boxes)
        expected_volume[where] = value
        with torch.no_grad():
            expected = float(network(torch.as_tensor(expected_volume)[None, None])[0, 0])
        assert abs(edited.logit() - expected) <= 1e-10 * max(1.0, abs(expected)), step
    np.testing.assert_array_equal(volume, original)
