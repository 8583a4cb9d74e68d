"""What every preprocessing worker needs before its first step, loaded by importing this module.

The server that forks Nipype's workers imports this module once
(:func:`msxai_bids.preprocessing.workers.start`), and every worker starts as a copy of it:
antspyx and the steps' modules imported (``import ants`` alone takes 1 s), the template and
its brain mask found in TemplateFlow's home (:func:`msxai_bids.templates.template_path`) and
read onto the CNN grid. The server does this while the main process indexes the dataset. The
loaded objects are then frozen out of the garbage collector: a worker's collections would
otherwise write to every one of them and copy the server's pages into the worker (50 MB of
the two processes' memory).

Without a usable TemplateFlow cache the lookup fails here and the server goes on: the steps
that read the template then raise the same error, which names the file, in their crash files.
"""

from __future__ import annotations

import gc
import logging

import ants  # noqa: F401

from msxai_bids.preprocessing import (  # noqa: F401
    bias,
    brain,
    lesion_fill,
    qc,
    registration,
    resampling,
)
from msxai_bids.preprocessing.spaces import template_brain, template_mask

LOGGER = logging.getLogger(__name__)

try:
    template_brain(), template_mask()
except FileNotFoundError as error:
    LOGGER.debug("templates not preloaded: %s", error)

gc.freeze()
