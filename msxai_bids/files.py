"""Atomic file writes: a reader (or a crash) never meets half a file.

Every file msxai writes, derivative, model, template or table, goes through
:func:`atomic_write`: the content is written to a temporary sibling and renamed over the target.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Create ``path`` through ``write(tmp_path)`` and a rename; return ``path``.

    The temporary file keeps ``path``'s name as its ending, so writers that choose a format
    by extension (``nb.save``, ``.nii.gz``) write the right one. It gets the mode a plain
    ``open`` would give (0666 less the umask): ``mkstemp``'s private 0600 would hide the
    outputs from the user's group and from a host user when a container ran as root.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=f"-{path.name}")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Atomically write a JSON file with sorted, indented keys."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))
