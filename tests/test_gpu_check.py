"""The GPU check (benchmarks/gpu_check.sh) still runs where there is no GPU: its CPU fallback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


def results(output: str, check: str) -> list[dict[str, str]]:
    """The ``key=value`` pairs of every line the check printed."""
    lines = re.findall(rf"^{check}: (.*)$", output, flags=re.MULTILINE)
    return [dict(pair.split("=", 1) for pair in line.split()) for line in lines]


@pytest.mark.slow
def test_the_gpu_check_runs_every_part_on_the_cpu():
    completed = subprocess.run(
        ["bash", str(SCRIPT), "--quick", "--device", "cpu"],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    out = completed.stdout
    assert [r["part"] for r in results(out, "done")] == ["agreement", "explain", "train", "ddp"]
    assert results(out, "agreement") == [{"skipped": "no-cuda-device"}]
    explained = results(out, "explain")
    assert {r["method"] for r in explained} == {"lrp-epsilon", "gradient-input", "smoothgrad"}
    assert all(float(r["participants_per_s"]) > 0 for r in explained)
    trained = results(out, "train")
    assert {r["network"] for r in trained} == {"fast", "literal"}
    assert float(trained[-1]["repeat_weights_differ_by"]) == 0.0  # seeded training repeats
    ddp = results(out, "ddp")
    assert ddp[0]["processes"] == "2" and ddp[0]["backend"] == "gloo"
    assert float(ddp[0]["weights_differ_by"]) == 0.0  # both processes hold the same model
    assert ddp[-1]["exit_code"] == "0"
