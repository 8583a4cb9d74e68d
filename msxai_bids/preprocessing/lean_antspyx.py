"""Imported first by the workers' server: its ``import ants`` then loads only what the
preprocessing steps call.

``import ants`` loads every subpackage of antspyx, and five that no step calls import
scikit-learn, statsmodels, SciPy's statistics and pyplot on the way: 1.25 of the 1.55 s the
import takes. Empty modules stand in for those five in the server
(:data:`msxai_bids.preprocessing.workers.MODULES`), and so in every worker forked from it.
Nowhere else: a process that imports msxai as a library gets all of antspyx.
"""

from __future__ import annotations

import sys
from types import ModuleType

#: Subpackages of antspyx 0.6 that ``import ants`` loads and no preprocessing step uses.
UNUSED_SUBPACKAGES = ("ants.contrib", "ants.deeplearn", "ants.learn", "ants.math", "ants.plotting")

if "ants" not in sys.modules:
    for name in UNUSED_SUBPACKAGES:
        sys.modules.setdefault(name, ModuleType(name))
