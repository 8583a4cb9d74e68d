"""The CNN's input grid: 96×114×96 voxels of 2 mm in MNI152NLin2009cAsym space.

TemplateFlow's ``res-02`` grid of MNI152NLin2009cAsym is 97×115×97 voxels of 2 mm with its
first voxel centre at (−96.5, −132.5, −78.5) mm. The network of Eitel et al. (2019) takes
96×114×96 voxels, so this grid is ``res-02`` with the last voxel of each axis dropped. It is
defined once, here, and every other module asks it for shape, affine and description.
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
            f"{nx}x{ny}x{nz} voxels of {self.voxel_mm:g} mm in {self.template}: "
            f"TemplateFlow res-02 "
            f"(97x115x97) without its last voxel along each axis; first voxel centre at "
            f"{tuple(float(v) for v in self.origin_mm)} mm (RAS)."
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
    origin_mm=(-96.5, -132.5, -78.5),
    label="cnn2mm",
)
