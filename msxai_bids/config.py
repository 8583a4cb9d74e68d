"""One frozen settings object, built by the command line and saved with the outputs.

Only the command line reads it: :mod:`msxai_bids.cli.run` and :mod:`msxai_bids.cli.plans` turn
it into the small frozen plans the stages take. Adding an option means one field here, one
argument in :mod:`msxai_bids.cli.parser` (whose destination names equal the field names) and,
if a stage uses it, one line in the plan builder.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from msxai_bids import __version__

#: Anatomical contrasts the pipeline accepts; FLAIR is the default, T1w serves pre-training
#: cohorts (the paper pre-trained on ADNI T1w images).
CONTRASTS = ("FLAIR", "T1w", "T2w")


def filtered_contrast(bids_filters: dict[str, Any]) -> Any:
    """The suffix the ``flair`` query of ``--bids-filter-file`` selects; FLAIR when it sets none."""
    return bids_filters.get("flair", {}).get("suffix", CONTRASTS[0])


def _new_run_id() -> str:
    """Timestamp plus a short random suffix, like fMRIPrep's run identifiers."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Config:
    """Settings of one ``msxai`` run.

    Paths are absolute. Label tuples hold bare labels (no ``sub-``/``ses-`` prefix).
    """

    bids_dir: Path
    output_dir: Path
    analysis_level: str
    participant_label: tuple[str, ...] = ()
    session_label: tuple[str, ...] = ()
    bids_filters: dict[str, Any] = field(default_factory=dict)
    skip_bids_validation: bool = False
    work_dir: Path = field(default_factory=lambda: Path("work").absolute())
    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float | None = None
    device: str = "auto"
    seed: int = 0
    verbose: int = 0
    lesion_fill: bool = False
    model: Path | None = None
    method: tuple[str, ...] = ("lrp-epsilon",)
    atlas: tuple[str, ...] = ()
    train: bool = False
    init_model: Path | None = None
    label_column: str = "diagnosis"
    positive_label: str = "MS"
    negative_label: str = "HC"
    trials: int = 10
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    patience: int | None = None
    holdout_fraction: float = 0.15
    validation_fraction: float = 0.15
    new_split: bool = False
    include_flagged: bool = False
    lesion_filled: bool = False
    skip_baselines: bool = False
    audit: bool = False
    audit_size: int = 10
    reports_only: bool = False
    force: bool = False
    command: str = ""
    run_id: str = field(default_factory=_new_run_id)

    @property
    def contrast(self) -> str:
        """Suffix of the images this run processes: FLAIR unless the BIDS filters choose another."""
        return filtered_contrast(self.bids_filters)

    @classmethod
    def from_namespace(cls, namespace: object) -> Config:
        """Build from an ``argparse.Namespace`` whose destinations are this class's field names."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in vars(namespace).items() if k in names and v is not None}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view, with paths as strings and the msxai version added."""
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        return {"msxai_version": __version__, **data}

    def save(self, path: Path) -> Path:
        """Write the settings as JSON next to the outputs, for provenance."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=list) + "\n")
        return path
