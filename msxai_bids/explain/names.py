"""Names of the explanation methods, importable without zennit.

zennit imports torchvision, which imports torch's compiler: two seconds that a run with
nothing to explain (a rerun of finished participants) should not pay for checking ``--method``.
:data:`msxai_bids.explain.methods.METHODS` holds the methods under these names.
"""

METHOD_NAMES = (
    "lrp-epsilon",
    "gradient-input",
    "lrp-epsilon-plus-flat",
    "lrp-alpha1beta0",
    "smoothgrad",
)
