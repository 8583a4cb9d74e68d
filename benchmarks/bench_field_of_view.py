"""The CNN's field of view on the template brain: the old grid origin, the current one, the best.

Usage::

    python benchmarks/bench_field_of_view.py [--range-mm 40]

The network's logit depends only on a block of leading voxels of its 96 × 114 × 96 input
(:func:`msxai_bids.explain.fieldofview.seen_block`). For the grid's first origin (TemplateFlow
``res-02`` without its last voxel) and for ``CNN_GRID``'s, the script prints the block in voxels
and in mm (world coordinates of its first and last voxel centres), and the share of the
template brain mask (1 mm, 1.9 M voxels, each assigned to its nearest grid voxel) that lies
outside the block, in all and beyond each side. A second figure resamples the mask onto the
grid itself (nearest neighbour, ``preprocessing.spaces.template_mask``), on a copy padded so
that brain beyond the grid counts too.

It then searches origins shifted from the first by whole millimetres (half voxels, so voxel
centres stay halfway between the template's 1 mm voxel centres) up to ``--range-mm`` along
each axis, and prints the best: nothing lost above the block if possible (the brain is taller
than the block, and the lowest slices, lower cerebellum and medulla, are the ones to give up),
then the fewest unseen voxels, then the block best centred on the brain.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools

import nibabel as nb
import numpy as np

from msxai_bids.explain.fieldofview import network_windows, seen_block
from msxai_bids.grid import CNN_GRID, Grid
from msxai_bids.templates import template_path

FIRST_ORIGIN = (-96.5, -132.5, -78.5)
"""The grid's origin before it was placed for the field of view: res-02's first voxel centre."""

SIDES = (("left", "right"), ("posterior", "anterior"), ("inferior", "superior"))


def brain_mask_1mm() -> tuple[np.ndarray, np.ndarray]:
    """The template brain mask (bool, 193 × 229 × 193) and its first voxel centre (mm)."""
    image = nb.load(template_path(desc="brain", suffix="mask"))
    if not np.allclose(image.affine[:3, :3], np.eye(3)):
        raise ValueError("expected the 1 mm RAS template")
    return np.asanyarray(image.dataobj) > 0, image.affine[:3, 3]


def block_slices(origin, block, start) -> tuple[slice, ...]:
    """1 mm voxel ranges whose centres lie inside the block's voxels (edges at half mm)."""
    half = CNN_GRID.voxel_mm / 2  # origins end in .5 mm, so edges fall between 1 mm centres
    low = np.asarray(origin) - half - start
    high = low + CNN_GRID.voxel_mm * np.asarray(block)
    return tuple(
        slice(max(int(np.ceil(a)), 0), max(int(np.ceil(b)), 0))
        for a, b in zip(low, high, strict=True)
    )


def unseen(mask: np.ndarray, start, origin, block) -> dict[str, float]:
    """Share of brain voxels outside the block, in all and beyond each of its six sides."""
    inside = block_slices(origin, block, start)
    total = mask.sum()
    shares = {"all": 1.0 - mask[inside].sum() / total}
    for axis, (below, above) in enumerate(SIDES):
        profile = mask.sum(axis=tuple(a for a in range(3) if a != axis))
        shares[below] = profile[: inside[axis].start].sum() / total
        shares[above] = profile[inside[axis].stop :].sum() / total
    return shares


def unseen_on_grid(grid: Grid, block, pad: int = 16) -> float:
    """Share of the mask resampled onto ``grid`` (padded by ``pad`` voxels) outside the block."""
    from msxai_bids.preprocessing.spaces import template_mask

    origin = tuple(o - pad * grid.voxel_mm for o in grid.origin_mm)
    shape = tuple(n + 2 * pad for n in grid.shape)
    padded = template_mask(dataclasses.replace(grid, origin_mm=origin, shape=shape)).numpy() > 0
    inside = tuple(slice(pad, pad + n) for n in block)
    return 1.0 - padded[inside].sum() / padded.sum()


def box_count(table: np.ndarray, box: tuple[slice, ...]) -> int:
    """Voxels counted by a summed-area ``table`` (zero-padded in front) inside ``box``."""
    total = 0
    for picks in itertools.product((0, 1), repeat=3):
        corner = tuple(
            min(s.stop, n - 1) if p else s.start
            for s, p, n in zip(box, picks, table.shape, strict=True)
        )
        total += (-1) ** (3 - sum(picks)) * int(table[corner])
    return total


def search(mask: np.ndarray, start, block, range_mm: int) -> tuple[float, ...]:
    """The best origin (see the module docstring) among whole-mm shifts of ``FIRST_ORIGIN``."""
    table = np.pad(mask.cumsum(0).cumsum(1).cumsum(2), ((1, 0),) * 3)
    below = np.concatenate([[0], mask.sum(axis=(0, 1)).cumsum()])  # brain under each slice
    ranges = [np.nonzero(mask.any(axis=tuple({0, 1, 2} - {ax})))[0] for ax in range(3)]
    centre = np.array([(r[0] + r[-1]) / 2 for r in ranges]) + start
    best = None
    for shift in itertools.product(range(range_mm + 1), repeat=3):
        origin = tuple(o + s for o, s in zip(FIRST_ORIGIN, shift, strict=True))
        box = block_slices(origin, block, start)
        top = below[-1] - below[min(box[2].stop, mask.shape[2])]
        middle = np.asarray(origin) + CNN_GRID.voxel_mm * (np.asarray(block) - 1) / 2
        key = (top, below[-1] - box_count(table, box), np.abs(middle - centre).sum())
        best = min(best or (key, origin), (key, origin))
    return best[1]


def describe(name: str, origin, block, mask, start) -> None:
    """Print one origin's block in voxels and mm and the brain it leaves out."""
    first = tuple(float(o) for o in origin)
    last = tuple(o + CNN_GRID.voxel_mm * (n - 1) for o, n in zip(first, block, strict=True))
    shares = unseen(mask, start, origin, block)
    grid = dataclasses.replace(CNN_GRID, origin_mm=tuple(origin))
    print(f"{name}: origin {tuple(origin)} mm")
    print(
        f"  seen block {' x '.join(map(str, block))} voxels of {CNN_GRID.voxel_mm:g} mm, "
        f"first voxel centre {first} mm, last {last} mm"
    )
    print(
        f"  brain-mask voxels unseen: {shares['all']:.2%} (1 mm mask); "
        f"{unseen_on_grid(grid, block):.2%} (mask resampled onto the grid)"
    )
    sides = ", ".join(f"{side} {shares[side]:.2%}" for pair in SIDES for side in pair)
    print(f"  beyond each side: {sides}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--range-mm", type=int, default=40, help="largest shift per axis (mm)")
    args = parser.parse_args()
    block = seen_block(CNN_GRID.shape, network_windows())
    mask, start = brain_mask_1mm()
    print(
        f"input {' x '.join(map(str, CNN_GRID.shape))} voxels; template brain mask "
        f"{int(mask.sum()):,} voxels of 1 mm"
    )
    describe("first grid (res-02 without its last voxel)", FIRST_ORIGIN, block, mask, start)
    describe("CNN_GRID", CNN_GRID.origin_mm, block, mask, start)
    best = search(mask, start, block, args.range_mm)
    verdict = "CNN_GRID's" if best == CNN_GRID.origin_mm else "NOT CNN_GRID's"
    print(f"best origin within {args.range_mm} mm shifts: {best} mm ({verdict})")


if __name__ == "__main__":
    main()
