"""What every preprocessing worker needs before its first step, loaded by importing this module.

The server that forks Nipype's workers imports this module once
(:func:`msxai_bids.preprocessing.workers.start`), and every worker starts as a copy of it:
antspyx (the parts the steps call, :mod:`msxai_bids.preprocessing.lean_antspyx`: 0.3 s) and
the steps' modules imported, nilearn's plotting for the QC figure (0.7 s, which the QC step
would otherwise pay), the template and its brain mask found in TemplateFlow's home
(:func:`msxai_bids.templates.template_path`) and read onto the CNN grid. The server does this
while the main process indexes the dataset.

Two things keep the workers from copying the server's memory. The loaded objects are frozen
out of the garbage collector: a worker's collections would otherwise write to every one of
them (50 MB). And the memory that loading freed (the 1 mm template and its resampling, 170 MB
under tcmalloc) goes back to the system: the allocator keeps it otherwise, and each worker
would reuse, and so copy, pages the server keeps as well.

Without a usable TemplateFlow cache the lookup fails here and the server goes on: the steps
that read the template then raise the same error, which names the file, in their crash files.
"""

from __future__ import annotations

import ctypes
import gc
import logging

import ants  # noqa: F401
import nilearn.plotting  # noqa: F401

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


def release_free_memory() -> None:
    """Hand the memory the allocator holds free back to the system: tcmalloc's call when it is
    the allocator (preloaded, as in the container), else glibc's ``malloc_trim``."""
    process = ctypes.CDLL(None)
    if hasattr(process, "MallocExtension_ReleaseFreeMemory"):
        process.MallocExtension_ReleaseFreeMemory()
    elif hasattr(process, "malloc_trim"):
        process.malloc_trim(0)


gc.freeze()
release_free_memory()
