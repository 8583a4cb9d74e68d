"""The FLAIR preprocessing workflow: native FLAIR → the CNN's 96×114×96, 2 mm, [0, 1] input."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from msxai_bids.grid import CNN_GRID
from msxai_bids.interfaces.anatomical import (
    BrainMask,
    N4BiasCorrection,
    Reorient,
    TemplateBrainMask,
)
from msxai_bids.interfaces.intensity import FillLesions, MinMaxScale
from msxai_bids.interfaces.qc import RegistrationQC
from msxai_bids.interfaces.registration import RegisterToTemplate, ResampleToGrid
from msxai_bids.preprocessing.workers import ITK_THREADS
from msxai_bids.workflows.outputs import stored_kinds

#: outputnode fields: every kind of derivative preprocessing makes, and the images' metadata.
OUTPUT_FIELDS = [*stored_kinds(has_lesion_mask=True, lesion_fill=True), "metadata"]

__desc__ = f"""\
Each FLAIR image was reoriented to RAS. A first brain mask (Otsu thresholding and
morphology: erosion by 4 mm, the central connected component, dilation) served a first
rigid and affine registration to the MNI152NLin2009cAsym template (TemplateFlow) at 8 mm.
The template's brain mask was then mapped back onto the FLAIR, and its voxels brighter
than 0.4 times their median intensity (filled, largest component) became the brain mask.
Intensity non-uniformity was corrected with N4 (Tustison et al. 2010; antspyx), estimated
inside that mask on 8 mm voxels (B-spline control points 100 mm apart), and the brain was
registered again with a 12-parameter affine transform (antsRegistration through antspyx,
Mattes mutual information on a seeded regular sample inside the template's eroded brain
mask, levels of 8, 4 and 2 mm, one thread so that a seed reproduces it). The brain mask was
redrawn with this transform, and the FLAIR was resampled in one step onto a grid of
{CNN_GRID.description} Intensities inside the brain mask were min-max scaled to [0, 1] per
participant (Eitel et al. 2019).
"""


def init_preproc_wf(
    *,
    lesion_fill: bool,
    has_lesion_mask: bool,
    seed: int = 0,
    contrast: str = "FLAIR",
    name: str = "preproc_wf",
) -> pe.Workflow:
    """Build the preprocessing workflow of one FLAIR.

    Parameters
    ----------
    lesion_fill : bool
        Also output the FLAIR with lesions filled by normal-appearing white matter
        (requires ``has_lesion_mask``).
    has_lesion_mask : bool
        A lesion mask is given and is moved to the grid with the FLAIR's transform.
    seed : int
        Seed of the registrations' sample points and of the intensities drawn by lesion
        filling (``--seed``).
    contrast : str
        The image's BIDS suffix; the QC checks that white and grey matter are ordered as in it.
    name : str
        Workflow name (unique per FLAIR, e.g. with subject, session and run).

    Inputs
    ------
    flair
        Native FLAIR (NIfTI, any orientation, with or without skull).
    lesion_mask
        Native binary lesion mask on the FLAIR's grid (only if ``has_lesion_mask``).

    Outputs
    -------
    preproc
        FLAIR on ``CNN_GRID`` (96×114×96, 2 mm, MNI152NLin2009cAsym), brain only, in [0, 1].
    brain_mask
        Brain mask on the grid (uint8-valued float): the template's brain mask placed on the
        FLAIR, restricted to tissue.
    lesion_mask
        Lesion mask on the grid (trilinear, threshold 0.5), if given.
    lesionfilled
        Lesion-filled FLAIR on the grid, in [0, 1], if ``lesion_fill``.
    xfm
        ITK affine text file; resamples the FLAIR onto MNI152NLin2009cAsym
        (``from-FLAIR_to-MNI152NLin2009cAsym_mode-image``).
    qc, qc_figure
        Registration quality numbers with a plausibility flag, and template edges over the FLAIR.
    metadata
        Sidecar fields for ``preproc`` (Resolution, SkullStripped, versions, QC).
    """
    if lesion_fill and not has_lesion_mask:
        raise ValueError("lesion filling needs a lesion mask")
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = __desc__
    inputnode = pe.Node(niu.IdentityInterface(fields=["flair", "lesion_mask"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=OUTPUT_FIELDS), name="outputnode")

    def itk_node(interface, node_name: str) -> pe.Node:
        node = pe.Node(interface, name=node_name, n_procs=ITK_THREADS)
        node.inputs.num_threads = ITK_THREADS
        return node

    reorient = pe.Node(Reorient(), name="reorient")
    first_mask = itk_node(BrainMask(), "first_mask")
    first_register = itk_node(RegisterToTemplate(schedule="initial", seed=seed), "first_register")
    prior_mask = itk_node(TemplateBrainMask(), "prior_mask")
    n4 = itk_node(N4BiasCorrection(), "n4")
    register = itk_node(RegisterToTemplate(schedule="final", seed=seed), "register")
    brain = itk_node(TemplateBrainMask(), "brain_mask")
    flair_to_grid = itk_node(ResampleToGrid(), "flair_to_grid")
    mask_to_grid = itk_node(ResampleToGrid(is_mask=True), "mask_to_grid")
    scale = pe.Node(MinMaxScale(), name="scale")
    qc = pe.Node(RegistrationQC(contrast=contrast), name="qc")

    workflow.connect([
        (inputnode, reorient, [("flair", "in_file")]),
        (reorient, first_mask, [("out_file", "in_file")]),
        (reorient, first_register, [("out_file", "in_file")]),
        (first_mask, first_register, [("out_mask", "mask_file")]),
        (reorient, prior_mask, [("out_file", "in_file")]),
        (first_register, prior_mask, [("out_xfm", "xfm")]),
        (reorient, n4, [("out_file", "in_file")]),
        (prior_mask, n4, [("out_mask", "mask_file")]),
        (n4, register, [("out_file", "in_file")]),
        (prior_mask, register, [("out_mask", "mask_file")]),
        (first_register, register, [("out_xfm", "initial_xfm")]),
        (reorient, brain, [("out_file", "in_file")]),
        (register, brain, [("out_xfm", "xfm")]),
        (n4, flair_to_grid, [("out_file", "in_file")]),
        (register, flair_to_grid, [("out_xfm", "xfm")]),
        (brain, mask_to_grid, [("out_mask", "in_file")]),
        (register, mask_to_grid, [("out_xfm", "xfm")]),
        (flair_to_grid, scale, [("out_file", "in_file")]),
        (mask_to_grid, scale, [("out_file", "mask_file")]),
        (flair_to_grid, qc, [("out_file", "in_file")]),
        (mask_to_grid, qc, [("out_file", "mask_file")]),
        (register, qc, [("out_xfm", "xfm")]),
        (scale, outputnode, [("out_file", "preproc")]),
        (mask_to_grid, outputnode, [("out_file", "brain_mask")]),
        (register, outputnode, [("out_xfm", "xfm")]),
        (qc, outputnode, [("out_json", "qc"), ("out_figure", "qc_figure"),
                          ("metadata", "metadata")]),
    ])  # fmt: skip
    if has_lesion_mask:
        _add_lesion_nodes(workflow, itk_node(ResampleToGrid(is_mask=True), "lesion_to_grid"),
                          lesion_fill, seed)  # fmt: skip
    return workflow


def _add_lesion_nodes(
    workflow: pe.Workflow, lesion_to_grid: pe.Node, lesion_fill: bool, seed: int
) -> None:
    """Move the lesion mask to the grid and, if asked, output a lesion-filled FLAIR."""
    inputnode, outputnode = workflow.get_node("inputnode"), workflow.get_node("outputnode")
    reorient = pe.Node(Reorient(), name="reorient_lesion")
    register = workflow.get_node("register")
    workflow.connect([
        (inputnode, reorient, [("lesion_mask", "in_file")]),
        (reorient, lesion_to_grid, [("out_file", "in_file")]),
        (register, lesion_to_grid, [("out_xfm", "xfm")]),
        (lesion_to_grid, outputnode, [("out_file", "lesion_mask")]),
    ])  # fmt: skip
    if not lesion_fill:
        return
    fill = pe.Node(FillLesions(seed=seed), name="fill_lesions")
    scale_filled = pe.Node(MinMaxScale(), name="scale_filled")
    workflow.connect([
        (workflow.get_node("flair_to_grid"), fill, [("out_file", "in_file")]),
        (lesion_to_grid, fill, [("out_file", "lesion_file")]),
        (workflow.get_node("mask_to_grid"), fill, [("out_file", "mask_file")]),
        (fill, scale_filled, [("out_file", "in_file")]),
        (workflow.get_node("mask_to_grid"), scale_filled, [("out_file", "mask_file")]),
        (scale_filled, outputnode, [("out_file", "lesionfilled")]),
    ])  # fmt: skip
