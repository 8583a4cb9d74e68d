"""Rendering of the reports: packaged Jinja2 templates, figures that may fail, software versions.

Reports are self-contained pages beside the outputs: figures are linked by relative paths, the
style is inline, nothing is fetched from the web.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2

from msxai_bids import __version__
from msxai_bids.files import atomic_write

LOGGER = logging.getLogger("msxai.reports")

#: Packages whose versions a report lists (distribution names on PyPI).
SOFTWARE = (
    "torch", "zennit", "antspyx", "nipype", "pybids", "nilearn", "nibabel",
    "templateflow", "scikit-learn", "numpy",
)  # fmt: skip


@dataclass(frozen=True)
class Figure:
    """A figure of a report: its path relative to the report, or why it is missing."""

    caption: str
    href: str | None = None
    error: str = ""


def draw(make: Callable[[], Path], root: Path, caption: str) -> Figure:
    """Call ``make`` (which writes one figure and returns its path) and describe the result.

    A figure that cannot be drawn is logged with its reason and shown as missing: a report with
    a gap is more use than a run that fails over a picture.
    """
    try:
        path = make()
    except Exception as err:  # any failure of a plotting library
        LOGGER.warning("figure not drawn (%s): %s: %s", caption, type(err).__name__, err)
        return Figure(caption, error=f"{type(err).__name__}: {err}")
    return linked(path, root, caption)


def linked(path: Path | None, root: Path, caption: str) -> Figure:
    """An existing file as a figure of the report in ``root``; missing when there is none."""
    if path is None or not path.is_file():
        return Figure(caption, error="not written by the run")
    return Figure(caption, href=path.relative_to(root).as_posix())


def number(value: Any, digits: int = 4) -> str:
    """A table value as the reports show it: ``digits`` significant digits, ``n/a`` if missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool | str):
        return str(value)
    return f"{value:.{digits}g}"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates in ``msxai_bids/data/reports``, HTML-escaped, with the ``number`` filter."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("msxai_bids", "data/reports"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = number
    return env


def render(template: str, context: Mapping[str, Any]) -> str:
    """The named template filled with ``context``."""
    return environment().get_template(template).render(**context)


def write_page(path: Path, template: str, context: Mapping[str, Any]) -> Path:
    """Render ``template`` into ``path`` atomically."""
    page = render(template, context)
    return atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))


@lru_cache(maxsize=1)
def software_versions() -> dict[str, str]:
    """msxai's version and the installed version of each of :data:`SOFTWARE`."""
    versions = {"msxai": __version__}
    for name in SOFTWARE:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
