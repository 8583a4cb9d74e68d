"""The CNN part of ``group --train``: repeated trials on one split and the best trial's model.

Each trial starts from Glorot weights (or from all weights of ``--init-model``) with seed
``--seed`` + trial number, trains with early stopping and is scored on the holdout with its
checkpoint. The trial with the best validation balanced accuracy (the paper's choice) is saved
as ``OUT/models/<model>`` with a card holding the data summary and metrics.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from msxai_bids import bids
from msxai_bids.config import Config
from msxai_bids.model import distributed
from msxai_bids.model.evaluation import summarise_trials
from msxai_bids.model.modelfile import ModelCard, load_model, read_card, save_model
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
from msxai_bids.workflows import group_tables as tables
from msxai_bids.workflows.cohort import label_description

LOGGER = logging.getLogger("msxai.group")


def cnn_description(config: Config) -> dict[str, str]:
    """Name and Table-3 description of the CNN this run trains."""
    pretrained = config.init_model is not None
    data = f"{config.contrast} lesion-filled" if config.lesion_filled else config.contrast
    name = "cnn-" + ("pretrained" if pretrained else "scratch")
    name += "-lesionfilled" if config.lesion_filled else ""
    return {
        "model": name,
        "data": data,
        "pretrained": "yes" if pretrained else "no",
        "classifier": "CNN",
    }


def training_settings(config: Config) -> TrainingSettings:
    """The paper's settings for this run (fine-tuning with ``--init-model``), with overrides."""
    base = FINE_TUNING if config.init_model is not None else FROM_SCRATCH
    return base.overridden(
        lr=config.lr,
        batch_size=config.batch_size,
        max_epochs=config.epochs,
        patience=config.patience,
    )


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


def initial_network(config: Config, seed: int) -> nn.Module:
    """Glorot-initialised network, or all the weights of ``--init-model`` (all trainable)."""
    torch.manual_seed(seed)
    if config.init_model is None:
        return FastSixtyFourNet()
    return load_model(config.init_model, implementation="fast")[0]


def run_trial(
    number: int,
    *,
    config: Config,
    by_split: dict[str, LabelledVolumes],
    settings: TrainingSettings,
    device: torch.device,
    processes: distributed.Processes,
) -> Trial:
    """Train one CNN (seed ``--seed`` + ``number``) and score the holdout with its checkpoint."""
    seed = config.seed + number
    network = initial_network(config, seed).to(device)
    log = tables.group_file(
        config.output_dir, f"{cnn_description(config)['model']}_trial-{number:02d}_epochs.tsv"
    )
    rows: list[dict] = []

    def record(row: dict) -> None:
        rows.append(row)
        if processes.is_main:
            bids.write_tsv(log, pd.DataFrame(rows))

    LOGGER.info("trial %d/%d (seed %d)", number, config.trials, seed)
    result = fit(
        distributed.wrap(network, processes, device),
        by_split["train"],
        by_split["validation"],
        settings,
        penalty=l2_penalty,
        seed=seed,
        device=device,
        processes=processes,
        on_epoch=record,
        progress=True,
    )
    network.load_state_dict(result.best_state)
    holdout = by_split["holdout"].volumes
    scores = predict_logits(network, holdout, batch_size=settings.batch_size, device=device)
    return Trial(number, seed, result, scores.numpy())


def cnn_results(config: Config, trials: list[Trial], holdout: pd.DataFrame, split: str) -> list:
    """Result rows of every CNN trial."""
    description = cnn_description(config)
    return [
        tables.result_rows(
            description,
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
    config: Config, trials: list[Trial], trial_table: pd.DataFrame, splits: pd.DataFrame
) -> Path:
    """Write the best trial's checkpoint as ``OUT/models/<model>`` with its card; return it."""
    best = best_trial(trials)
    network = FastSixtyFourNet()
    network.load_state_dict(best.result.best_state)
    model = cnn_description(config)["model"]
    mine = trial_table[trial_table["model"] == model]
    summary = plain(summarise_trials(mine).iloc[0])
    chosen = plain(mine[mine["trial"] == best.number].iloc[0])
    card = ModelCard(
        positive_label=config.positive_label,
        negative_label=config.negative_label,
        description=f"{model}: trial {best.number}/{len(trials)}, epoch {best.result.best_epoch}",
        training=training_summary(config, best, splits),
        metrics={"best_trial": chosen, "holdout_over_trials": summary},
    )
    stem = tables.model_stem(config.output_dir, model)
    stem.parent.mkdir(parents=True, exist_ok=True)
    path = save_model(stem, network, card)
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


def training_summary(config: Config, best: Trial, splits: pd.DataFrame) -> dict:
    """The card's account of data and procedure."""
    counts = splits.groupby(["split", "target"]).size()
    init = read_card(config.init_model).model_id if config.init_model else None
    return {
        "dataset": str(config.bids_dir),
        "label_column": config.label_column,
        "label_description": label_description(config.bids_dir, config.label_column),
        "images": {
            f"{s}_{'positive' if t else 'negative'}": int(n) for (s, t), n in counts.items()
        },
        "subjects": int(splits["participant_id"].nunique()),
        "input": f"{'lesion-filled' if config.lesion_filled else 'preprocessed'} {config.contrast}",
        "split_file": f"{tables.GROUP_DIR}/splits.tsv",
        "split_id": tables.split_id(splits),
        "init_model": init,
        "settings": asdict(training_settings(config)),
        "seed": best.seed,
        "trials": config.trials,
        "best_epoch": best.result.best_epoch,
        "epochs_run": len(best.result.history),
    }
