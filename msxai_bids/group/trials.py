"""The CNN part of ``group --train``: repeated trials on one split and the best trial's model.

Each trial starts from Glorot weights (or from all weights of ``--init-model``) with seed
``--seed`` + trial number, trains with early stopping and is scored on the holdout with its
checkpoint. The trial with the best validation balanced accuracy (the paper's choice) is saved
as ``OUT/models/<model>`` with a card holding the data summary and metrics.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from msxai_bids import bids, derivatives
from msxai_bids.group import tables
from msxai_bids.model import distributed
from msxai_bids.model.evaluation import summarise_trials
from msxai_bids.model.modelfile import ModelCard, load_model, save_model
from msxai_bids.model.network import FastSixtyFourNet, l2_penalty
from msxai_bids.model.splits import SPLITS
from msxai_bids.model.training import (
    FINE_TUNING,
    FROM_SCRATCH,
    FitResult,
    LabelledVolumes,
    TrainingSettings,
    fit,
    predict_logits,
)

LOGGER = logging.getLogger("msxai.group")


def cnn_description(*, pretrained: bool, lesion_filled: bool, contrast: str) -> dict[str, str]:
    """Name and Table-3 description of a CNN: initialisation and input data."""
    name = "cnn-" + ("pretrained" if pretrained else "scratch")
    name += "-lesionfilled" if lesion_filled else ""
    return {
        "model": name,
        "data": f"{contrast} lesion-filled" if lesion_filled else contrast,
        "pretrained": "yes" if pretrained else "no",
        "classifier": "CNN",
    }


def training_settings(*, pretrained: bool, **overrides: float | int | None) -> TrainingSettings:
    """The paper's settings (fine-tuning when ``pretrained``), with the options that are set.

    ``overrides`` are :class:`TrainingSettings` fields (``lr``, ``batch_size``,
    ``max_epochs``, ``patience``); None keeps the paper's value.
    """
    return (FINE_TUNING if pretrained else FROM_SCRATCH).overridden(**overrides)


@dataclass(frozen=True)
class CnnPlan:
    """The CNN trials of one ``group --train`` run.

    ``description`` comes from :func:`cnn_description`; trial ``n`` uses seed ``seed + n``
    and starts from ``init_model`` when given (all layers trainable), else from Glorot weights.
    """

    output_dir: Path
    description: dict[str, str]
    settings: TrainingSettings
    trials: int
    seed: int = 0
    init_model: Path | None = None

    @property
    def model(self) -> str:
        """The model's name, e.g. ``cnn-scratch``; also the stem of its file."""
        return self.description["model"]


def split_volumes(volumes: torch.Tensor, splits: pd.DataFrame) -> dict[str, LabelledVolumes]:
    """Views (no copies) of the cached volumes per split; ``splits`` is ordered by split."""
    targets = torch.tensor(splits["target"].to_numpy(), dtype=torch.float32)
    by_split, start = {}, 0
    for name in SPLITS:
        stop = start + int((splits["split"] == name).sum())
        by_split[name] = LabelledVolumes(volumes[start:stop], targets[start:stop])
        start = stop
    return by_split


@dataclass(frozen=True)
class Trial:
    """One training of the CNN and its holdout scores (logits, shape (n_holdout,))."""

    number: int
    seed: int
    result: FitResult
    scores: np.ndarray


def initial_network(init_model: Path | None, seed: int) -> nn.Module:
    """Glorot-initialised network, or all the weights of ``init_model`` (all trainable)."""
    torch.manual_seed(seed)
    if init_model is None:
        return FastSixtyFourNet()
    return load_model(init_model, implementation="fast")[0]


def run_trial(
    number: int,
    *,
    plan: CnnPlan,
    by_split: dict[str, LabelledVolumes],
    device: torch.device,
    processes: distributed.Processes,
) -> Trial:
    """Train one CNN (seed ``plan.seed + number``); score the holdout with its checkpoint."""
    seed = plan.seed + number
    network = initial_network(plan.init_model, seed).to(device)
    log = derivatives.path(plan.output_dir, "epochs", model=plan.model, trial=f"{number:02d}")
    rows: list[dict] = []

    def record(row: dict) -> None:
        rows.append(row)
        if processes.is_main:
            bids.write_tsv(log, pd.DataFrame(rows))

    LOGGER.info("trial %d/%d (seed %d)", number, plan.trials, seed)
    result = fit(
        distributed.wrap(network, processes, device),
        by_split["train"],
        by_split["validation"],
        plan.settings,
        penalty=l2_penalty,
        seed=seed,
        device=device,
        processes=processes,
        on_epoch=record,
        progress=True,
    )
    network.load_state_dict(result.best_state)
    holdout = by_split["holdout"].volumes
    scores = predict_logits(network, holdout, batch_size=plan.settings.batch_size, device=device)
    return Trial(number, seed, result, scores.numpy())


def cnn_results(plan: CnnPlan, trials: list[Trial], holdout: pd.DataFrame, split: str) -> list:
    """Result rows of every CNN trial."""
    return [
        tables.result_rows(
            plan.description,
            t.number,
            holdout,
            t.scores,
            split,
            seed=t.seed,
            best_epoch=t.result.best_epoch,
            epochs=len(t.result.history),
            val_balanced_accuracy=t.result.best["val_balanced_accuracy"],
            val_loss=t.result.best["val_loss"],
        )
        for t in trials
    ]


def best_trial(trials: list[Trial]) -> Trial:
    """The trial with the best validation balanced accuracy (then lowest validation loss)."""
    return max(
        trials, key=lambda t: (t.result.best["val_balanced_accuracy"], -t.result.best["val_loss"])
    )


def save_best_model(
    plan: CnnPlan, trials: list[Trial], trial_table: pd.DataFrame, card: ModelCard
) -> Path:
    """Write the best trial's checkpoint as ``OUT/models/<model>``; return its path.

    ``card`` holds the labels and the account of the data; the trial, its metrics and the
    training procedure are added here.
    """
    best = best_trial(trials)
    network = FastSixtyFourNet()
    network.load_state_dict(best.result.best_state)
    mine = trial_table[trial_table["model"] == plan.model]
    summary = plain(summarise_trials(mine).iloc[0])
    chosen = plain(mine[mine["trial"] == best.number].iloc[0])
    card = replace(
        card,
        description=f"{plan.model}: trial {best.number}/{len(trials)}, "
        f"epoch {best.result.best_epoch}",
        training={**card.training, **procedure(plan, best)},
        metrics={"best_trial": chosen, "holdout_over_trials": summary},
    )
    path = save_model(derivatives.path(plan.output_dir, "model", model=plan.model), network, card)
    LOGGER.info(
        "best trial %d (validation balanced accuracy %.3f, holdout %.3f); model: %s",
        best.number,
        chosen["val_balanced_accuracy"],
        chosen["balanced_accuracy"],
        path,
    )
    return path


def plain(row: pd.Series) -> dict:
    """A table row as JSON-ready Python values (numpy scalars → numbers), without missing ones."""
    return json.loads(row.dropna().to_json())


def procedure(plan: CnnPlan, best: Trial) -> dict:
    """The card's account of how the saved network was trained."""
    return {
        "settings": asdict(plan.settings),
        "seed": best.seed,
        "trials": plan.trials,
        "best_epoch": best.result.best_epoch,
        "epochs_run": len(best.result.history),
    }
