"""From the options to the stages' plans: with the entry point, the only reader of the config.

Each builder checks what its stage will use (model files, methods, atlases) before any work
starts, so that a typo fails in seconds with a usage error and not after hours of training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from msxai_bids.config import Config
from msxai_bids.errors import NoInputError, UsageError

if TYPE_CHECKING:  # stages import Nipype or torch, which only a run that uses them loads
    from msxai_bids.group.cohort import Labels
    from msxai_bids.stages.analysis import AnalysisPlan
    from msxai_bids.stages.audit import AuditPlan
    from msxai_bids.stages.explanation import ExplanationPlan
    from msxai_bids.stages.preprocessing import PreprocessingPlan
    from msxai_bids.stages.report import ReportPlan
    from msxai_bids.stages.training import TrainingPlan


Plan = TypeVar("Plan")


def plan_from(config: Config, plan: type[Plan], **values: Any) -> Plan:
    """A ``plan`` whose fields come from ``values``, else from the config field of the same name.

    Fields the config does not have keep the plan's default.
    """
    names = {f.name for f in fields(plan) if hasattr(config, f.name)} - set(values)
    return plan(**{name: getattr(config, name) for name in names}, **values)


def check_model(path: Path, option: str) -> str:
    """Check a model file (card, checksum, weights) without torch; return its identifier.

    An unusable file is a missing input (66), found before any image is preprocessed; torch,
    1.4 s to import, loads later, while the preprocessing runs.
    """
    from msxai_bids.model.modelfile import ModelFileError, check_file

    try:
        return check_file(path).model_id
    except ModelFileError as err:
        raise NoInputError(f"{option}: {err}") from err


def check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """Refuse unknown explanation methods."""
    from msxai_bids.explain.names import METHOD_NAMES

    unknown = sorted(set(methods) - set(METHOD_NAMES))
    if unknown:
        choices = ", ".join(METHOD_NAMES)
        raise UsageError(f"unknown --method {', '.join(unknown)}; choose from {choices}")
    return tuple(methods)


def check_atlases(atlases: Sequence[str]) -> tuple[str, ...]:
    """Load every atlas once (they are cached for the stage); the paper's pair by default."""
    from msxai_bids.explain.atlases import BUILTIN_ATLASES, default_atlases, load_atlas

    chosen = tuple(atlases) or tuple(default_atlases())
    for atlas in chosen:
        if atlas not in BUILTIN_ATLASES and not Path(atlas).is_file():
            raise UsageError(
                f"unknown --atlas {atlas}; choose from {', '.join(BUILTIN_ATLASES)} "
                "or give the path of an atlas-<name>_dseg.nii.gz with its .tsv"
            )
        try:
            load_atlas(atlas)
        except (OSError, ValueError) as err:
            raise NoInputError(f"--atlas {atlas}: {err}") from err
    return chosen


def labels(config: Config) -> Labels:
    """The label column and its two values."""
    from msxai_bids.group.cohort import Labels

    return Labels(config.label_column, config.positive_label, config.negative_label)


def preprocessing_plan(config: Config) -> PreprocessingPlan:
    """The participant level's preprocessing."""
    from msxai_bids.stages.preprocessing import PreprocessingPlan

    return plan_from(config, PreprocessingPlan)


def report_plan(config: Config) -> ReportPlan:
    """The reports of either level."""
    from msxai_bids.stages.report import ReportPlan

    return plan_from(config, ReportPlan, redraw=config.reports_only or config.force)


def explanation_plan(config: Config) -> ExplanationPlan:
    """Prediction and explanation, with ``--model`` or with the model a group run trains."""
    from msxai_bids.stages.explanation import ExplanationPlan

    return plan_from(
        config,
        ExplanationPlan,
        methods=check_methods(config.method),
        atlases=check_atlases(config.atlas),
        threads=config.nprocs,
    )


def audit_plan(config: Config) -> AuditPlan | None:
    """``group --audit``: the explanation audit, with ``--model`` as one more model to audit."""
    if not config.audit:
        return None
    from msxai_bids.stages.audit import AuditPlan

    models = ()
    if config.model is not None:
        check_model(config.model, "--model")
        models = (config.model,)
    return plan_from(
        config, AuditPlan, size=config.audit_size, models=models, threads=config.nprocs
    )


def analysis_plan(config: Config) -> AnalysisPlan:
    """The group level's analyses of the heatmaps in OUT, with the audit if asked for."""
    from msxai_bids.stages.analysis import AnalysisPlan

    return plan_from(
        config,
        AnalysisPlan,
        labels=labels(config),
        atlases=check_atlases(config.atlas),
        audit=audit_plan(config),
    )


def training_plan(config: Config) -> TrainingPlan:
    """``group --train``: the CNN trials, the data, labels and split; reads ``--init-model``."""
    from msxai_bids.group.trials import CnnPlan, cnn_description, training_settings
    from msxai_bids.stages.training import TrainingPlan

    pretrained = config.init_model is not None
    init_model_id = check_model(config.init_model, "--init-model") if pretrained else None
    settings = training_settings(
        pretrained=pretrained,
        lr=config.lr,
        batch_size=config.batch_size,
        max_epochs=config.epochs,
        patience=config.patience,
    )
    description = cnn_description(
        pretrained=pretrained, lesion_filled=config.lesion_filled, contrast=config.contrast
    )
    return plan_from(
        config,
        TrainingPlan,
        cnn=plan_from(config, CnnPlan, description=description, settings=settings),
        labels=labels(config),
        init_model_id=init_model_id,
        threads=config.omp_nthreads,
    )
