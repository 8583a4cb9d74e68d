"""Diagnostic groups: who the synthetic subjects are and how disease shapes their brains.

MS patients and healthy controls follow Table 1 of Eitel et al. (2019): 55 % / 65 % female,
age 43.3 ± 12.0 / 38.2 ± 13.1 years within 18–69, lesion volume median 5.10 ml (0.12–232)
and 0.09 ml (0–15). Alzheimer's patients and cognitively normal subjects (the pre-training
task) follow Table 2 (42 % / 48 % female, age 75.0 ± 7.4 / 75.9 ± 5.0 years); their lesions
are the small white-matter hyperintensities of ageing. Atrophy ranges are plausible values,
not taken from the paper: mild ventricular widening in MS, marked ventricular, hippocampal
and cortical atrophy in AD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msxai_bids.synth.lesions import LesionLoad

_MS_SITES = {"periventricular": 0.6, "juxtacortical": 0.2, "deep": 0.2}
_AGEING_SITES = {"periventricular": 0.5, "juxtacortical": 0.0, "deep": 0.5}


@dataclass(frozen=True)
class Group:
    """One diagnostic group of a synthetic cohort.

    Attributes
    ----------
    diagnosis : str
        Value of the ``diagnosis`` column in ``participants.tsv``.
    description : str
        Meaning of that value, for ``participants.json``.
    age_mean, age_sd : float
        Normal distribution of age in years.
    age_range : tuple of float
        Ages are clipped to this range (years).
    p_female : float
        Probability of sex ``F``.
    load : LesionLoad
        Distribution of total lesion volume and lesion sites.
    ventricle_mm, hippocampus, cortex : tuple of float
        Uniform ranges of ventricular widening (mm) and of the fraction of hippocampal and
        sulcal-border grey matter lost.
    """

    diagnosis: str
    description: str
    age_mean: float
    age_sd: float
    age_range: tuple[float, float]
    p_female: float
    load: LesionLoad
    ventricle_mm: tuple[float, float]
    hippocampus: tuple[float, float]
    cortex: tuple[float, float]

    def draw_age_sex(self, rng: np.random.Generator) -> tuple[int, str]:
        """Age in whole years and sex (``F``/``M``) of one subject."""
        age = np.clip(rng.normal(self.age_mean, self.age_sd), *self.age_range)
        return round(float(age)), "F" if rng.random() < self.p_female else "M"


GROUPS = {
    "MS": Group(
        "MS", "relapsing-remitting multiple sclerosis (synthetic patient)",
        43.32, 11.99, (18, 69), 0.55, LesionLoad(5.1, 1.3, 0.1, 80.0, 0.0, _MS_SITES),
        ventricle_mm=(0.5, 2.0), hippocampus=(0.0, 0.1), cortex=(0.0, 0.1),
    ),
    "HC": Group(
        "HC", "healthy control (synthetic)",
        38.23, 13.10, (18, 69), 0.65, LesionLoad(0.12, 1.0, 0.01, 3.0, 0.2, _AGEING_SITES),
        ventricle_mm=(0.0, 1.0), hippocampus=(0.0, 0.05), cortex=(0.0, 0.05),
    ),
    "AD": Group(
        "AD", "Alzheimer's disease (synthetic patient)",
        74.98, 7.40, (55, 90), 0.42, LesionLoad(1.5, 1.0, 0.05, 30.0, 0.0, _AGEING_SITES),
        ventricle_mm=(1.5, 3.5), hippocampus=(0.3, 0.6), cortex=(0.15, 0.3),
    ),
    "CN": Group(
        "CN", "cognitively normal control (synthetic)",
        75.93, 5.01, (60, 90), 0.48, LesionLoad(0.5, 1.0, 0.01, 10.0, 0.1, _AGEING_SITES),
        ventricle_mm=(0.3, 1.5), hippocampus=(0.0, 0.15), cortex=(0.0, 0.1),
    ),
}  # fmt: skip
"""Groups by diagnosis label."""

TASKS = {"ms": ("MS", "HC"), "ad": ("AD", "CN")}
"""Per cohort task: (patient diagnosis, control diagnosis)."""
