"""Train the demo model that ships inside the package (``msxai_bids/data/demo-model.*``).

A seeded synthetic cohort (60 MS, 60 HC, 1.5 mm FLAIR with lesion masks), the participant
level, then ``group --train`` from scratch and once more from that model (``--init-model``) on
the same split. The last model is copied into the package with a card that says what it is:
trained on synthetic data, by this script, for demonstrations only. A step whose product
exists is skipped (rerun into a fresh WORK_DIR to start over).

    python scripts/train_demo_model.py WORK_DIR [--nprocs 2]

Every step is a plain ``msxai``/``msxai-synth`` command, printed before it runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import subprocess
import sys
from pathlib import Path

from msxai_bids import derivatives
from msxai_bids.data import SHIPPED_MODELS
from msxai_bids.model.modelfile import load_model, save_model

PACKAGED = SHIPPED_MODELS["demo"]
SEED = 11
COHORT = ["--n-patients", "60", "--n-controls", "60", "--native-resolution", "1.5"]
#: One trial on 2 cores: an epoch of the 72 training images takes about 25 s with tcmalloc.
TRAINING = ["--trials", "1", "--epochs", "30", "--batch-size", "4", "--patience", "10"]
#: From scratch the validation loss still fell at epoch 30 (holdout balanced accuracy 0.83), so
#: training goes on from that model for 30 more epochs at the fine-tuning learning rate.
FROM_SCRATCH = ["--skip-baselines"]
CONTINUED = ["--lr", "0.0005", "--skip-baselines"]
INTENDED_USE = (
    "Demonstration of msxai only. Trained on synthetic FLAIR images made by msxai-synth; "
    "it has never seen a real scan and is not for clinical or research use on patients."
)


def step(command: list[str], product: Path) -> str:
    """Run one command, printed first, unless its product exists; stop on failure."""
    print("+", shlex.join(command), flush=True)
    if product.exists():
        print(f"  (skipped: {product} exists)", flush=True)
    else:
        subprocess.run(command, check=True)
    return shlex.join(command)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="folder for the cohort and the run")
    parser.add_argument("--nprocs", default="2")
    args = parser.parse_args()
    bids, out, work = args.work / "bids", args.work / "out", args.work / "work"
    bin_dir = Path(sys.executable).parent
    synth, msxai = str(bin_dir / "msxai-synth"), str(bin_dir / "msxai")
    common = ["-w", str(work), "--nprocs", args.nprocs, "--skip-bids-validation"]
    train = [msxai, str(bids), str(out), "group", "--train", *TRAINING, "--seed", str(SEED)]
    scratch = derivatives.path(out, "model", model="cnn-scratch")
    continued = derivatives.path(out, "model", model="cnn-pretrained")
    commands = [
        step([synth, str(bids), *COHORT, "--seed", str(SEED), "-q"], bids / "participants.tsv"),
        step([msxai, str(bids), str(out), "participant", *common, "--omp-nthreads", "1"],
             scratch),
        step([*train, *FROM_SCRATCH, *common], scratch),
        step([*train, "--init-model", str(scratch.with_suffix("")), *CONTINUED, *common],
             continued),
    ]  # fmt: skip
    network, card = load_model(continued)

    def portable(text: str) -> str:
        """``text`` without this machine's folders: WORK_DIR and the programs by name."""
        return text.replace(f"{bin_dir}/", "").replace(str(args.work), "WORK_DIR")

    card = dataclasses.replace(
        card,
        description=f"msxai demo model (synthetic data, not for clinical use); {card.description}",
        training={
            **card.training,
            "dataset": portable(card.training["dataset"]),
            "data_kind": "synthetic (msxai-synth)",
            "made_by": f"scripts/train_demo_model.py WORK_DIR (seed {SEED})",
            "commands": [portable(command) for command in commands],
            "intended_use": INTENDED_USE,
        },
    )
    PACKAGED.parent.mkdir(exist_ok=True)
    print("model card:", save_model(PACKAGED, network, card))


if __name__ == "__main__":
    main()
