"""The methods text of a run, written the way fMRIPrep does: a paragraph a user can paste into a
paper, with its references, in ``OUT/logs/CITATION.md`` and ``CITATION.bib`` and in every report.

The text states what OUT holds (methods, models, atlases, lesion filling, the audit) and the
versions that made it; the references are packaged in ``data/reports/references.json``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from msxai_bids import __version__, derivatives
from msxai_bids.files import atomic_write
from msxai_bids.grid import CNN_GRID
from msxai_bids.reports.html import render, software_versions

CITATION = re.compile(r"\[((?:@\w+(?:; )?)+)\]")


@dataclass(frozen=True)
class Reference:
    key: str
    cite: str
    reference: str
    bibtex: str


def references() -> dict[str, Reference]:
    """The packaged references by key."""
    text = resources.files("msxai_bids").joinpath("data/reports/references.json").read_text()
    return {item["key"]: Reference(**item) for item in json.loads(text)}


@dataclass(frozen=True)
class Methods:
    """The methods text: paragraphs with ``[@key]`` citations, and the keys cited, in order."""

    paragraphs: tuple[str, ...]
    keys: tuple[str, ...]

    def with_citations(self) -> list[str]:
        """The paragraphs with each ``[@a; @b]`` written as ``(A et al., 2019; B et al., 2015)``."""
        known = references()

        def cite(match: re.Match) -> str:
            keys = [key.strip().lstrip("@") for key in match.group(1).split(";")]
            return "(" + "; ".join(known[key].cite for key in keys) + ")"

        return [CITATION.sub(cite, paragraph) for paragraph in self.paragraphs]


def methods_text(
    *, methods: list[dict[str, Any]], models: list[str], atlases: list[str], lesion_fill: bool,
    audit: bool,
) -> Methods:  # fmt: skip
    """Fill the packaged methods template.

    Parameters
    ----------
    methods : list of dict
        One heatmap sidecar per explanation method present (``Method``, ``Epsilon``…).
    models, atlases : list of str
        Names of the models that explained images, and of the atlases of the region tables.
    lesion_fill, audit : bool
        Whether lesion-filled images and an explanation audit are in OUT.
    """
    text = render(
        "methods.md",
        {
            "version": __version__, "template": CNN_GRID.template, "versions": software_versions(),
            "grid": "96 × 114 × 96 voxels of 2 mm", "lesion_fill": lesion_fill, "models": models,
            "methods": methods, "atlases": atlases, "audit": audit,
        },
    )  # fmt: skip
    paragraphs = tuple(" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip())
    keys = []
    for match in CITATION.finditer(text):
        for key in match.group(1).split(";"):
            if (key := key.strip().lstrip("@")) not in keys:
                keys.append(key)
    return Methods(paragraphs, tuple(keys))


def write_citation(output_dir: Path, methods: Methods) -> tuple[Path, Path]:
    """``logs/CITATION.md`` (text and references) and ``logs/CITATION.bib``."""
    known = references()
    cited = [known[key] for key in methods.keys]
    markdown = "\n\n".join(
        ["# Methods", *methods.with_citations(), "## References", *(r.reference for r in cited)]
    )
    bibtex = "\n\n".join(r.bibtex for r in cited)
    md = derivatives.path(output_dir, "citation")
    bib = derivatives.path(output_dir, "citation_bib")
    atomic_write(md, lambda tmp: tmp.write_text(markdown + "\n", encoding="utf-8"))
    atomic_write(bib, lambda tmp: tmp.write_text(bibtex + "\n", encoding="utf-8"))
    return md, bib
