"""Files that ship inside the package, found by path without importing anything heavy."""

from __future__ import annotations

from pathlib import Path

#: Models shipped with msxai, by the name ``--model`` accepts for them (stems of the file pairs).
SHIPPED_MODELS = {"demo": Path(__file__).parent / "demo-model"}
