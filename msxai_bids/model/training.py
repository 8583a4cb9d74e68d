"""Training the CNN the way Eitel et al. (2019) did, as a few small functions.

Adam with Keras' per-iteration decay (lr / (1 + decay · iteration)), binary cross-entropy on
the logit plus an L2 penalty, early stopping on the validation loss, and the checkpoint kept at
the best validation balanced accuracy. Defaults: :data:`FROM_SCRATCH` (the paper's
pre-training) and :data:`FINE_TUNING` (its transfer to MS). On a CPU the same seed gives the
same losses and metrics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits
from tqdm import tqdm

from msxai_bids.model.datasets import augment
from msxai_bids.model.distributed import SINGLE_PROCESS, Processes, shard, unwrap
from msxai_bids.model.evaluation import binary_metrics

#: A regulariser: network → scalar tensor added to the loss of every batch.
Penalty = Callable[[nn.Module], torch.Tensor]

#: Keras' Adam epsilon (the paper's framework); PyTorch's default is 1e-8.
ADAM_EPSILON = 1e-7


@dataclass(frozen=True)
class TrainingSettings:
    """Hyperparameters of one training run.

    Attributes
    ----------
    lr : float
        Initial Adam learning rate.
    decay : float
        Keras decay: the rate at optimiser step ``it`` (from 0) is ``lr / (1 + decay · it)``.
    batch_size : int
        Images per optimiser step (per process when distributed).
    max_epochs : int
        Upper bound on epochs.
    patience : int
        Epochs without a lower validation loss before stopping.
    augment : bool
        Random sagittal flips and ±2-voxel axial translations of training images.
    """

    lr: float
    decay: float
    batch_size: int
    max_epochs: int
    patience: int
    augment: bool

    def overridden(self, **values: float | int | None) -> TrainingSettings:
        """A copy with the given fields replaced; ``None`` keeps the current value."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


#: The paper's pre-training (AD vs CN): no decay, no augmentation.
FROM_SCRATCH = TrainingSettings(
    lr=1e-3, decay=0.0, batch_size=8, max_epochs=45, patience=10, augment=False
)
#: The paper's fine-tuning (MS vs HC), starting from a pre-trained model.
FINE_TUNING = TrainingSettings(
    lr=5e-4, decay=2e-3, batch_size=4, max_epochs=200, patience=15, augment=True
)


@dataclass(frozen=True)
class LabelledVolumes:
    """Images and labels of one split, on the CPU.

    Attributes
    ----------
    volumes : Tensor of shape (n, 1, x, y, z), float32
    targets : Tensor of shape (n,), float32
        1 for patients, 0 for controls.
    """

    volumes: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class FitResult:
    """What one training run leaves.

    Attributes
    ----------
    history : DataFrame
        One row per epoch (see :func:`fit`).
    best_state : dict
        The network's ``state_dict`` (CPU tensors) at the checkpointed epoch.
    best_epoch : int
        The checkpointed epoch, counted from 1.
    """

    history: pd.DataFrame
    best_state: dict[str, torch.Tensor]
    best_epoch: int

    @property
    def best(self) -> pd.Series:
        """The history row of the checkpointed epoch."""
        return self.history.loc[self.history["epoch"] == self.best_epoch].iloc[0]


def make_optimizer(
    model: nn.Module, settings: TrainingSettings
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam and the Keras decay schedule, to be stepped once per batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, eps=ADAM_EPSILON)
    decay = settings.decay
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0 / (1.0 + decay * it))
    return optimizer, scheduler


def stream_seeds(seed: int, rank: int) -> tuple[int, int, int]:
    """Independent seeds for the sample order (shared by all processes), augmentation and dropout.

    Augmentation and dropout differ between processes so that they do not repeat each other.
    """
    order = int(np.random.SeedSequence([seed]).generate_state(1)[0])
    augmentation, dropout = np.random.SeedSequence([seed, rank + 1]).generate_state(2)
    return order, int(augmentation), int(dropout)


def batch_indices(
    n: int, batch_size: int, generator: torch.Generator, processes: Processes
) -> list[torch.Tensor]:
    """One epoch's batches of sample indices: a seeded shuffle, this process's share of it."""
    order = shard(torch.randperm(n, generator=generator), processes)
    return list(order.split(batch_size))


@contextmanager
def denormals_flushed() -> Iterator[None]:
    """Compute with float denormals flushed to zero on the CPU, then restore IEEE behaviour.

    TensorFlow, the paper's Keras backend, runs its CPU kernels this way. Tiny activations
    and gradients otherwise take the slow denormal path: training steps are about 10 % faster
    (``benchmarks/bench_training.py``).
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def train_epoch(
    model: nn.Module,
    data: LabelledVolumes,
    batches: list[torch.Tensor],
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    penalty: Penalty,
    augmentation: torch.Generator | None,
    device: torch.device,
) -> dict[str, float]:
    """One pass over ``batches``; returns the mean total loss and its cross-entropy part.

    The total loss per batch is the batch-mean cross-entropy plus ``penalty(network)``, as in
    Keras, where kernel regularisers are added once per batch. Denormals are flushed to zero
    meanwhile (:func:`denormals_flushed`).
    """
    model.train()
    totals, entropies = [], []
    with denormals_flushed():
        for index in batches:
            x = data.volumes[index]
            x = augment(x, augmentation) if augmentation is not None else x
            x, y = x.to(device, non_blocking=True), data.targets[index].to(device)
            entropy = binary_cross_entropy_with_logits(model(x).reshape(-1), y)
            loss = entropy + penalty(unwrap(model))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            totals.append(loss.item())
            entropies.append(entropy.item())
    return {"loss": float(np.mean(totals)), "bce": float(np.mean(entropies))}


@torch.no_grad()
def predict_logits(
    model: nn.Module, volumes: torch.Tensor, *, batch_size: int, device: torch.device
) -> torch.Tensor:
    """Logits of shape (n,) for volumes of shape (n, 1, x, y, z), in evaluation mode, on the CPU."""
    model.eval()
    chunks = [model(chunk.to(device)).reshape(-1).cpu() for chunk in volumes.split(batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0)


def validate(
    model: nn.Module,
    data: LabelledVolumes,
    *,
    penalty: Penalty,
    batch_size: int,
    device: torch.device,
) -> dict[str, float]:
    """Validation loss (cross-entropy + penalty, as Keras reports it) and metrics."""
    network = unwrap(model)
    logits = predict_logits(network, data.volumes, batch_size=batch_size, device=device)
    entropy = binary_cross_entropy_with_logits(logits, data.targets).item()
    with torch.no_grad():
        regulariser = float(penalty(network))
    metrics = binary_metrics(data.targets.numpy(), logits.numpy())
    return {
        "val_loss": entropy + regulariser,
        "val_bce": entropy,
        **{f"val_{name}": value for name, value in metrics.items()},
    }


def improves_checkpoint(row: dict[str, float], best: dict[str, float] | None) -> bool:
    """Higher validation balanced accuracy; on a tie, lower validation loss.

    The tie-break matters on small validation sets, where the balanced accuracy takes few
    values and reaches its maximum early.
    """
    if best is None:
        return True
    accuracy, best_accuracy = row["val_balanced_accuracy"], best["val_balanced_accuracy"]
    if accuracy != best_accuracy:
        return accuracy > best_accuracy
    return row["val_loss"] < best["val_loss"]


class EarlyStopping:
    """Keras' ``EarlyStopping(monitor="val_loss")``: stop after ``patience`` epochs without a
    strictly lower validation loss."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.lowest = math.inf
        self.stale = 0

    def should_stop(self, loss: float) -> bool:
        """Record one epoch's validation loss; True when training should end."""
        if loss < self.lowest:
            self.lowest, self.stale = loss, 0
        else:
            self.stale += 1
        return self.stale >= self.patience


def fit(
    model: nn.Module,
    train: LabelledVolumes,
    validation: LabelledVolumes,
    settings: TrainingSettings,
    *,
    penalty: Penalty,
    seed: int,
    device: torch.device,
    processes: Processes = SINGLE_PROCESS,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    progress: bool = False,
) -> FitResult:
    """Train ``model`` in place with early stopping; return the history and best checkpoint.

    Parameters
    ----------
    model : nn.Module
        Network mapping (n, 1, x, y, z) to logits of n elements, already on ``device`` (and
        wrapped in ``DistributedDataParallel`` when ``processes`` is distributed).
    train, validation : LabelledVolumes
        Images on the CPU; each batch is moved to ``device`` when used.
    settings : TrainingSettings
        Hyperparameters.
    penalty : callable
        Regulariser of the plain network (the paper's L2 on conv3/conv4 kernels).
    seed : int
        Fixes dropout, sample order and augmentation.
    device : torch.device
        Where the network runs.
    processes : Processes
        This process's rank among the training processes.
    on_epoch : callable, optional
        Called with each epoch's history row (e.g. to append it to a log file).
    progress : bool
        Show a progress bar over epochs (rank 0 only).

    Returns
    -------
    FitResult
        ``history`` has columns ``epoch``, ``lr`` (rate at the epoch's first step), ``loss``,
        ``bce`` (training, this process's share), ``val_loss``, ``val_bce``,
        ``val_balanced_accuracy``, ``val_sensitivity``, ``val_specificity``, ``val_auc``,
        ``checkpoint`` (1 where the best state was taken) and ``seconds``.
    """
    order_seed, augment_seed, dropout_seed = stream_seeds(seed, processes.rank)
    torch.manual_seed(dropout_seed)
    order = torch.Generator().manual_seed(order_seed)
    augmentation = torch.Generator().manual_seed(augment_seed) if settings.augment else None
    optimizer, scheduler = make_optimizer(model, settings)
    stopping = EarlyStopping(settings.patience)
    rows, best, best_state = [], None, {}
    bar = tqdm(
        range(1, settings.max_epochs + 1),
        desc="epochs",
        unit="epoch",
        disable=not (progress and processes.is_main),
    )
    for epoch in bar:
        start = time.perf_counter()
        batches = batch_indices(len(train), settings.batch_size, order, processes)
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        row |= train_epoch(
            model,
            train,
            batches,
            optimizer=optimizer,
            scheduler=scheduler,
            penalty=penalty,
            augmentation=augmentation,
            device=device,
        )
        row |= validate(
            model, validation, penalty=penalty, batch_size=settings.batch_size, device=device
        )
        row["checkpoint"] = int(improves_checkpoint(row, best))
        if row["checkpoint"]:
            best, best_state = row, _cpu_copy(unwrap(model).state_dict())
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", val_loss=f"{row['val_loss']:.3f}")
        if on_epoch is not None:
            on_epoch(row)
        if stopping.should_stop(row["val_loss"]):
            break
    return FitResult(pd.DataFrame(rows), best_state, int(best["epoch"]))


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a ``state_dict`` that later optimiser steps cannot change."""
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in state.items()}
