"""Shared pieces of the interfaces that run ITK code through antspyx: thread count and file I/O."""

from __future__ import annotations

import os
from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, traits


class ThreadedInputSpec(BaseInterfaceInputSpec):
    """Inputs of every antspyx-backed interface: how many threads ITK may use."""

    num_threads = traits.Int(1, usedefault=True, nohash=True, desc="ITK threads (--omp-nthreads)")


def use_itk_threads(num_threads: int) -> None:
    """Tell ITK how many threads to use in this process.

    ITK reads ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` when it first creates a multi-threader,
    so this must run before the first antspyx call of the process; every node of a workflow
    sets the same value, so whichever node runs first in a worker decides for all.
    """
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(max(int(num_threads), 1))


def output_path(cwd: str, in_file: str, suffix: str, extension: str = ".nii") -> str:
    """``<cwd>/<in_file stem><suffix><extension>``: where a node writes its result.

    Images in the working directory are not compressed: ITK gzips a 1 mm head in 3 s and
    writes it uncompressed in 0.1 s, and an image passes through half a dozen nodes. The sinks
    compress what goes into OUT.
    """
    name = Path(in_file).name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(name).stem
    return str(Path(cwd) / f"{stem}{suffix}{extension}")
