"""Realistic synthetic BIDS cohorts for testing and demonstrating msxai.

``make_cohort`` writes MS-vs-control (or Alzheimer's-vs-normal) FLAIR or T1w images built on
the ICBM 2009a template, with lesion masks and a ground-truth derivative that ``load_truth``
reads. Modules, in the order the simulation uses them: ``anatomy`` (template tissues,
atrophy, head shell), ``lesions``, ``groups`` (diagnoses), ``contrast``, ``acquisition``
(pose, grid, bias, noise), ``subject``, ``naming``, ``truth``, ``cohort``, ``cli``.
"""

from msxai_bids.synth.cohort import make_cohort
from msxai_bids.synth.truth import SubjectTruth, load_all_truths, load_truth

__all__ = ["SubjectTruth", "load_all_truths", "load_truth", "make_cohort"]
