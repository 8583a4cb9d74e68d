"""Which network this msxai runs, by name, version and size: what a model card must state.

Kept apart from :mod:`msxai_bids.model.network` so that a model file is checked against it
without importing torch (1.4 s), before any work starts.
"""

ARCHITECTURE = "SixtyFourNet"
ARCHITECTURE_VERSION = 1
N_PARAMETERS = 333_889
