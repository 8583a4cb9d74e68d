"""The server process that forks the preprocessing workers, started before anything else.

Nipype's MultiProc runs each step in a worker process. msxai's workers are forked from a server
(multiprocessing's forkserver) that imports what the steps need once,
:mod:`msxai_bids.preprocessing.preload`, 2.2 s of Nipype, antspyx, nilearn and templates.
Starting it does not wait for that: the server loads on another core while the participant
level imports its stages and indexes the dataset. This module imports nothing heavy, so that a
run can start the server first (:func:`msxai_bids.cli.run.start_workers_early`).
"""

from __future__ import annotations

import os
import signal
from multiprocessing import forkserver

ITK_THREADS = 1
"""Threads of every ITK (antspyx) step. With two, Mattes mutual information sums its samples
in a varying order and a rerun with the same seed moved the transform by up to 0.1 mm of
translation; with one, reruns are bit-identical. Participants run in parallel instead
(``--nprocs``)."""

#: What the server imports for its workers, in this order (names the server cannot import it
#: skips silently).
MODULES = (
    "msxai_bids.preprocessing.lean_antspyx",
    "msxai_bids.workflows.preprocessing",
    "msxai_bids.preprocessing.preload",
)


def start(omp_nthreads: int) -> None:
    """Start the workers' server with its imports, unless it is already running.

    Workers come from a fresh server, not from this process: forked workers can deadlock in
    OpenMP thread pools (scikit-learn, torch) that this process had already started. They
    inherit the server's environment: one ITK thread (bit-reproducible registration) and
    ``omp_nthreads`` OpenMP threads.
    """
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(ITK_THREADS)
    os.environ["OMP_NUM_THREADS"] = str(omp_nthreads)
    forkserver.set_forkserver_preload(list(MODULES))
    forkserver.ensure_running()


def stop() -> None:
    """Stop the workers' server once the workflow has run.

    It holds antspyx and the templates, 0.4 GB that would sit beside the explanation stage's
    network in this process's peak. It is ended by SIGTERM: it has nothing
    to write, and a normal exit would first collect its frozen heap (0.5 s, and a report from
    antspyx's bindings of objects never freed). CPython has no public call for stopping the
    server; ``ForkServer._stop``, which its own tests use, then reaps it. A later run in this
    process starts a new server.
    """
    server = forkserver._forkserver
    if server._forkserver_pid is not None:
        os.kill(server._forkserver_pid, signal.SIGTERM)
    server._stop()
