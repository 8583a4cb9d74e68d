"""Training mechanics (msxai_bids.model.training) on a tiny stand-in network and small tensors.

The paper's network is trained end to end in ``test_group.py``; here a 2-layer network on
8×8×8 volumes keeps every test fast while exercising the real optimiser, schedule, penalty,
early stopping and checkpointing code.
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pandas as pd
import pytest
import torch
from cnn_fixtures import SMALL_SHAPE, brain_like_volume
from torch import nn

from msxai_bids.model import distributed
from msxai_bids.model.distributed import Processes, shard
from msxai_bids.model.evaluation import binary_metrics
from msxai_bids.model.network import FastSixtyFourNet, l2_penalty
from msxai_bids.model.training import (
    FINE_TUNING,
    FROM_SCRATCH,
    EarlyStopping,
    LabelledVolumes,
    denormals_flushed,
    fit,
    improves_checkpoint,
    make_optimizer,
    predict_logits,
)

CPU = torch.device("cpu")


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 4, 3)
        self.head = nn.Sequential(
            nn.ELU(), nn.AdaptiveMaxPool3d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(4, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


def tiny_penalty(model: TinyNet) -> torch.Tensor:
    return 0.01 * model.conv.weight.pow(2).sum()


def blobs(n: int, seed: int) -> LabelledVolumes:
    """Noise volumes; patients (every second image) carry a bright 2×2×2 blob."""
    generator = torch.Generator().manual_seed(seed)
    volumes = 0.3 * torch.rand(n, 1, 8, 8, 8, generator=generator)
    targets = (torch.arange(n) % 2).float()
    volumes[targets == 1, :, 3:5, 3:5, 3:5] += 1.0
    return LabelledVolumes(volumes, targets)


def train_tiny(seed: int, **overrides) -> tuple[TinyNet, object]:
    torch.manual_seed(seed)
    model = TinyNet()
    settings = FROM_SCRATCH.overridden(
        **{"lr": 1e-2, "batch_size": 4, "max_epochs": 6, "patience": 3, **overrides}
    )
    result = fit(
        model, blobs(16, 0), blobs(8, 1), settings, penalty=tiny_penalty, seed=seed, device=CPU
    )
    return model, result


def test_paper_defaults():
    assert (FROM_SCRATCH.lr, FROM_SCRATCH.batch_size, FROM_SCRATCH.max_epochs) == (1e-3, 8, 45)
    assert (FROM_SCRATCH.patience, FROM_SCRATCH.decay) == (10, 0.0)
    assert (FINE_TUNING.lr, FINE_TUNING.decay, FINE_TUNING.batch_size) == (5e-4, 2e-3, 4)
    assert (FINE_TUNING.max_epochs, FINE_TUNING.patience, FINE_TUNING.augment) == (200, 15, True)
    assert FINE_TUNING.overridden(lr=None, patience=3).patience == 3


def test_denormals_are_flushed_only_inside_the_context():
    tiny = torch.tensor([1e-40])  # a float32 denormal
    with denormals_flushed():
        assert (tiny * 1.0).item() == 0.0
    assert (tiny * 1.0).item() > 0.0


def test_learning_rate_follows_keras_decay_per_iteration():
    model = TinyNet()
    optimizer, scheduler = make_optimizer(model, FINE_TUNING)
    for _ in range(250):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-4 / (1 + 0.002 * 250))


def test_same_seed_gives_identical_losses_and_metrics():
    _, first = train_tiny(seed=3, augment=True)
    _, second = train_tiny(seed=3, augment=True)
    columns = [c for c in first.history.columns if c != "seconds"]
    pd.testing.assert_frame_equal(first.history[columns], second.history[columns])
    _, other = train_tiny(seed=4, augment=True)
    assert not np.allclose(first.history["loss"], other.history["loss"])


def test_training_lowers_the_loss_and_separates_the_classes():
    _, result = train_tiny(seed=0, max_epochs=12, patience=12)
    losses = result.history["bce"].to_numpy()
    assert losses[-3:].mean() < 0.7 * losses[:2].mean()
    assert result.best["val_balanced_accuracy"] == 1.0


def test_loss_includes_the_penalty_and_checkpoint_holds_the_best_state():
    model, result = train_tiny(seed=1)
    history = result.history
    assert (history["loss"] > history["bce"]).all()
    assert history.loc[history["checkpoint"] == 1, "epoch"].max() == result.best_epoch
    model.load_state_dict(result.best_state)
    logits = predict_logits(model, blobs(8, 1).volumes, batch_size=4, device=CPU)
    entropy = nn.functional.binary_cross_entropy_with_logits(logits, blobs(8, 1).targets)
    assert entropy.item() == pytest.approx(result.best["val_bce"], rel=1e-5)


def test_early_stopping_waits_patience_epochs_without_a_lower_loss():
    stopping = EarlyStopping(patience=2)
    assert [stopping.should_stop(x) for x in (1.0, 0.9, 0.95, 0.9)] == [False] * 3 + [True]
    # a large step makes the validation loss rise at some epoch; patience 1 stops right there
    _, result = train_tiny(seed=0, patience=1, max_epochs=20, lr=0.5)
    losses = result.history["val_loss"].to_numpy()
    assert len(losses) < 20
    assert all(losses[i] < losses[:i].min() for i in range(1, len(losses) - 1))
    assert not losses[-1] < losses[:-1].min()


def test_checkpoint_prefers_accuracy_then_lower_loss():
    best = {"val_balanced_accuracy": 0.8, "val_loss": 0.5}
    assert improves_checkpoint({"val_balanced_accuracy": 0.9, "val_loss": 0.9}, best)
    assert improves_checkpoint({"val_balanced_accuracy": 0.8, "val_loss": 0.4}, best)
    assert not improves_checkpoint({"val_balanced_accuracy": 0.8, "val_loss": 0.5}, best)
    assert not improves_checkpoint({"val_balanced_accuracy": 0.7, "val_loss": 0.1}, best)


def test_processes_share_an_epoch_in_equal_parts():
    order = torch.randperm(10)
    shares = [shard(order, Processes(rank=r, world_size=3)) for r in range(3)]
    assert {len(s) for s in shares} == {4}
    assert set(torch.cat(shares).tolist()) == set(range(10))
    assert torch.equal(shard(order, Processes()), order)


def test_a_process_without_a_gpu_of_its_own_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert distributed.select_device("cuda", Processes(local_rank=0, world_size=2)).index == 0
    with pytest.raises(RuntimeError, match="process 1 of this machine has no GPU of its own"):
        distributed.select_device("auto", Processes(rank=1, local_rank=1, world_size=2))


def lesion_cohort(n: int, seed: int) -> LabelledVolumes:
    """Brain-like volumes of the smallest size the paper's network takes; patients (every
    second image) carry eight bright 6-voxel cubes, like large lesions."""
    generator = torch.Generator().manual_seed(seed)
    volumes = torch.cat([brain_like_volume(seed * 100 + i, SMALL_SHAPE) for i in range(n)])
    volumes = 0.3 * volumes
    targets = (torch.arange(n) % 2).float()
    for i in range(1, n, 2):
        corners = torch.randint(20, 46, (8, 3), generator=generator)
        for x, y, z in corners.tolist():
            volumes[i, 0, x : x + 6, y + 10 : y + 16, z : z + 6] = 2.0
    return LabelledVolumes(volumes, targets)


def entropy(model: nn.Module, data: LabelledVolumes) -> float:
    logits = predict_logits(model, data.volumes, batch_size=4, device=CPU)
    return nn.functional.binary_cross_entropy_with_logits(logits, data.targets).item()


@pytest.mark.slow
def test_paper_network_trains_reproducibly():
    data = lesion_cohort(4, seed=5)
    settings = FINE_TUNING.overridden(max_epochs=1, batch_size=2)
    histories = []
    for _ in range(2):
        torch.manual_seed(0)
        network = FastSixtyFourNet()
        result = fit(network, data, data, settings, penalty=l2_penalty, seed=0, device=CPU)
        histories.append(result.history.drop(columns="seconds"))
    pd.testing.assert_frame_equal(*histories)


@pytest.mark.slow
def test_paper_network_learns_lesions_and_beats_chance():
    train, validation, holdout = lesion_cohort(8, 1), lesion_cohort(2, 2), lesion_cohort(8, 3)
    torch.manual_seed(0)
    network = FastSixtyFourNet()
    before = entropy(network, train)
    # batches of two make single epochs noisy; eight epochs leave no doubt about the trend
    settings = FROM_SCRATCH.overridden(batch_size=2, max_epochs=8)
    result = fit(network, train, validation, settings, penalty=l2_penalty, seed=0, device=CPU)
    assert entropy(network, train) < 0.8 * before
    network.load_state_dict(result.best_state)
    scores = predict_logits(network, holdout.volumes, batch_size=4, device=CPU)
    assert binary_metrics(holdout.targets.numpy(), scores.numpy())["auc"] > 0.75


def train_one_rank(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """One process of a Gloo (CPU) DistributedDataParallel run, as torchrun would start it."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    torch.set_num_threads(1)
    processes = Processes.from_environment()
    distributed.start(processes, CPU)
    torch.manual_seed(0)
    model = distributed.wrap(TinyNet(), processes, CPU)
    settings = FINE_TUNING.overridden(lr=1e-2, max_epochs=3, batch_size=2)
    result = fit(
        model, blobs(10, 0), blobs(4, 1), settings, penalty=tiny_penalty, seed=0, device=CPU,
        processes=processes,
    )  # fmt: skip
    torch.save(
        {"final": distributed.unwrap(model).state_dict(), "history": result.history},
        f"{out_dir}/rank{rank}.pt",
    )
    distributed.stop(processes)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_distributed_processes_train_in_step(tmp_path):
    torch.multiprocessing.spawn(train_one_rank, args=(2, free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for name, tensor in ranks[0]["final"].items():
        assert torch.equal(tensor, ranks[1]["final"][name]), name
    validation = [c for c in ranks[0]["history"] if c.startswith("val_")]
    pd.testing.assert_frame_equal(ranks[0]["history"][validation], ranks[1]["history"][validation])
    assert not np.allclose(ranks[0]["history"]["bce"], ranks[1]["history"]["bce"])  # own shares
