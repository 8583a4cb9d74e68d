"""The CNN's input grid: 96×114×96 voxels of 2 mm in MNI152NLin2009cAsym space.

The network of Eitel et al. (2019) takes 96×114×96 voxels but, with valid convolutions and
pooling that rounds down, its logit depends only on a block of leading voxels, 71×98×71 of
them (:mod:`msxai_bids.explain.fieldofview` derives the block from the layers; a test checks
it against the network's gradients). Voxels beyond it never receive relevance, so the grid is
placed for that block to cover the template brain: its first voxel centre is
(−70.5, −114.5, −58.5) mm. The block then spans 142×196×142 mm, centred on the brain from left
to right and front to back; the brain is 155 mm tall, so the block leaves out its bottom 13 mm
(lower cerebellum and medulla) and keeps the vertex: 0.6 % of the template's brain-mask voxels
are unseen, against 15.8 % (right lateral cortex, vertex) with the grid's first origin.
``benchmarks/bench_field_of_view.py`` searches the origins and prints these figures. The voxel
centres are those of TemplateFlow's ``res-02`` grid of the template (first voxel centre
(−96.5, −132.5, −78.5) mm), shifted by whole voxels, halfway between ``res-01`` voxel centres.
The grid is defined once, here, and every other module asks it for shape, affine and
description.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """A regular RAS grid in a template space.

    Attributes
    ----------
    template : str
        TemplateFlow identifier of the space.
    shape : tuple of int
        Number of voxels along i, j, k.
    voxel_mm : float
        Isotropic voxel size in millimetres.
    origin_mm : tuple of float
        World coordinate (mm) of the centre of voxel (0, 0, 0).
    label : str
        Value of the BIDS ``res-`` entity naming this grid.
    """

    template: str
    shape: tuple[int, int, int]
    voxel_mm: float
    origin_mm: tuple[float, float, float]
    label: str

    @property
    def affine(self) -> np.ndarray:
        """Voxel-to-world affine of shape (4, 4), RAS, in millimetres."""
        affine = np.diag([self.voxel_mm, self.voxel_mm, self.voxel_mm, 1.0])
        affine[:3, 3] = self.origin_mm
        return affine

    @property
    def description(self) -> str:
        """Human-readable text for the ``Resolution`` field of derivative sidecars."""
        nx, ny, nz = self.shape
        return (
            f"{nx}x{ny}x{nz} voxels of {self.voxel_mm:g} mm in {self.template}, first voxel "
            f"centre at {tuple(float(v) for v in self.origin_mm)} mm (RAS); placed so that "
            f"the CNN's field of view, the block of voxels from the first one that its output "
            f"depends on, covers the template brain."
        )

    def as_dict(self) -> dict:
        """JSON-ready description, stored in model cards to refuse mismatched models."""
        return {
            "template": self.template,
            "shape": list(self.shape),
            "voxel_mm": self.voxel_mm,
            "origin_mm": list(self.origin_mm),
            "label": self.label,
        }


CNN_GRID = Grid(
    template="MNI152NLin2009cAsym",
    shape=(96, 114, 96),
    voxel_mm=2.0,
    origin_mm=(-70.5, -114.5, -58.5),
    label="cnn2mm",
)
