"""Command line: BIDS-App rules and exit codes (DESIGN.md §2)."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cnn_fixtures import seeded_network

from msxai_bids import __version__
from msxai_bids.cli.run import main, make_config
from msxai_bids.model.modelfile import ModelCard, save_model
from msxai_bids.model.network import SixtyFourNet


def test_version_prints_and_exits_zero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"msxai {__version__}"


def test_console_script_is_installed():
    proc = subprocess.run(
        [Path(sys.executable).with_name("msxai"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_console_script_exits_with_the_runs_exit_code(tmp_path):
    proc = subprocess.run(
        [
            Path(sys.executable).with_name("msxai"),
            tmp_path / "nothing",
            tmp_path / "out",
            "participant",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 66 and "nothing" in proc.stderr


def test_unknown_level_exits_17(tiny_bids, tmp_path, capsys):
    assert main([str(tiny_bids), str(tmp_path / "out"), "nonsense"]) == 17
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nonsense" in err[0]


def test_missing_bids_dir_exits_66(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), str(tmp_path / "out"), "participant"]) == 66
    assert "does not exist" in capsys.readouterr().err


def test_bad_option_exits_64(tiny_bids, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main([str(tiny_bids), str(tmp_path / "out"), "participant", "--no-such-option"])
    assert exc.value.code == 64


def test_bad_participant_label_exits_64(tiny_bids, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main([str(tiny_bids), str(tmp_path / "out"), "participant", "--participant-label", "a/b"])
    assert exc.value.code == 64


def test_unknown_participant_exits_18(tiny_bids, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            str(tiny_bids),
            str(out),
            "participant",
            "--participant-label",
            "sub-99",
            "-w",
            str(tmp_path / "work"),
        ]
    )
    assert code == 18
    assert "99" in capsys.readouterr().err
    assert not (out / "dataset_description.json").exists()


def test_a_run_leaves_no_log_handlers_and_its_log_ends_with_the_exit_code(tiny_bids, tmp_path):
    """No handler or level outlives its run, so that a later run in one process logs to its own
    console and other code logs as before."""
    logger = logging.getLogger("msxai")
    level = logger.level
    out = tmp_path / "out"
    argv = [
        str(tiny_bids),
        str(out),
        "participant",
        "--participant-label",
        "99",
        "-w",
        str(tmp_path / "work"),
    ]
    assert main(argv) == 18
    assert not logger.handlers and logger.level == level
    (log,) = (out / "logs").glob("msxai-*.log")
    assert log.read_text().strip().splitlines()[-1].endswith("msxai finished, exit code 18")


def test_filters_selecting_nothing_exit_18(tiny_bids, tmp_path):
    filters = tmp_path / "filters.json"
    filters.write_text(json.dumps({"flair": {"acquisition": "nothere"}}))
    code = main(
        [
            str(tiny_bids),
            str(tmp_path / "out"),
            "participant",
            "--skip-bids-validation",
            "--bids-filter-file",
            str(filters),
            "-w",
            str(tmp_path / "work"),
        ]
    )
    assert code == 18


def test_malformed_filter_file_exits_64(tiny_bids, tmp_path):
    filters = tmp_path / "filters.json"
    filters.write_text("[1, 2]")
    with pytest.raises(SystemExit) as exc:
        main(
            [
                str(tiny_bids),
                str(tmp_path / "out"),
                "participant",
                "--bids-filter-file",
                str(filters),
            ]
        )
    assert exc.value.code == 64


def test_filter_file_sets_the_contrast_and_refuses_others(tiny_bids, tmp_path, capsys):
    filters = tmp_path / "filters.json"
    args = [str(tiny_bids), str(tmp_path / "out"), "participant", "--bids-filter-file"]
    filters.write_text(json.dumps({"flair": {"suffix": "T1w"}}))
    assert make_config([*args, str(filters)]).contrast == "T1w"
    assert make_config(args[:3]).contrast == "FLAIR"
    filters.write_text(json.dumps({"flair": {"suffix": "bold"}}))
    with pytest.raises(SystemExit) as exc:
        main([*args, str(filters)])
    assert exc.value.code == 64
    assert "'bold' is not one contrast" in capsys.readouterr().err


def test_output_equal_to_input_exits_64(tiny_bids):
    assert main([str(tiny_bids), str(tiny_bids), "participant"]) == 64


def test_work_dir_inside_bids_exits_64(tiny_bids, tmp_path):
    code = main(
        [str(tiny_bids), str(tmp_path / "out"), "participant", "-w", str(tiny_bids / "work")]
    )
    assert code == 64


def test_invalid_bids_exits_16(tiny_bids, tmp_path, capsys):
    (tiny_bids / "sub-01" / "anat" / "sub-01_whatever.nii.gz").write_bytes(b"junk")
    code = main(
        [str(tiny_bids), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "work")]
    )
    assert code == 16
    assert "not valid BIDS" in capsys.readouterr().err


def test_dataset_without_flair_exits_66(tiny_bids, tmp_path):
    for flair in tiny_bids.rglob("*_FLAIR.*"):
        flair.rename(flair.with_name(flair.name.replace("FLAIR", "T2w")))
    code = main(
        [
            str(tiny_bids),
            str(tmp_path / "out"),
            "participant",
            "--skip-bids-validation",
            "-w",
            str(tmp_path / "work"),
        ]
    )
    assert code == 66


def test_config_strips_prefixes_and_accepts_both_spellings(tiny_bids, tmp_path):
    args = [str(tiny_bids), str(tmp_path / "out"), "participant"]
    dash = make_config([*args, "--participant-label", "sub-01", "02", "--session-label", "ses-a"])
    underscore = make_config([*args, "--participant_label", "01", "sub-02", "--session_label", "a"])
    assert dash.participant_label == underscore.participant_label == ("01", "02")
    assert dash.session_label == ("a",)
    assert dash.omp_nthreads == min(dash.nprocs, 8)


def test_config_round_trips_to_json(tiny_bids, tmp_path):
    config = make_config([str(tiny_bids), str(tmp_path / "out"), "participant", "--seed", "7"])
    saved = json.loads(config.save(tmp_path / "config.json").read_text())
    assert saved["seed"] == 7 and saved["bids_dir"] == str(tiny_bids)
    assert saved["msxai_version"] == __version__


def test_participant_level_checks_the_atlas_before_preprocessing(tiny_bids, tmp_path, capsys):
    model = save_model(tmp_path / "model", seeded_network(SixtyFourNet), ModelCard("MS", "HC"))
    out = tmp_path / "out"
    args = [str(tiny_bids), str(out), "participant", "--skip-bids-validation", "--model"]
    code = main([*args, str(model), "--atlas", str(tmp_path / "atlas-none_dseg.nii.gz")])
    assert code == 64
    assert "unknown --atlas" in capsys.readouterr().err
    assert not list(out.glob("sub-*"))  # nothing was preprocessed


def test_participant_level_checks_the_model_file_before_preprocessing(tiny_bids, tmp_path, capsys):
    model = save_model(tmp_path / "model", seeded_network(SixtyFourNet), ModelCard("MS", "HC"))
    weights = model.with_suffix(".safetensors")
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    card = json.loads(model.with_suffix(".json").read_text())
    card["weights_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    model.with_suffix(".json").write_text(json.dumps(card))
    out = tmp_path / "out"
    args = [str(tiny_bids), str(out), "participant", "--skip-bids-validation", "--model"]
    assert main([*args, str(model)]) == 66
    err = capsys.readouterr().err
    assert f"{weights}: not a readable safetensors file" in err and "Traceback" not in err
    assert not list(out.glob("sub-*"))


def test_output_directory_that_is_a_file_exits_64(tiny_bids, tmp_path, capsys):
    blocker = tmp_path / "out"
    blocker.write_text("a file")
    assert main([str(tiny_bids), str(blocker), "participant"]) == 64
    assert f"output directory {blocker} is a file" in capsys.readouterr().err
    code = main([str(tiny_bids), str(blocker / "deeper"), "participant"])
    assert code == 64
    err = capsys.readouterr().err
    assert f"output directory {blocker / 'deeper'} cannot be created: {blocker} is a file" in err
    assert "Traceback" not in err


def test_unwritable_output_or_work_directory_exits_64(tiny_bids, tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    assert main([str(tiny_bids), str(locked / "out"), "participant"]) == 64
    assert f"cannot be written: no write permission on {locked}" in capsys.readouterr().err
    code = main([str(tiny_bids), str(tmp_path / "out"), "participant", "-w", str(locked / "w")])
    assert code == 64
    assert f"work directory {locked / 'w'} cannot be written" in capsys.readouterr().err


def test_output_inside_bids_but_not_under_derivatives_exits_64(tiny_bids, capsys):
    assert main([str(tiny_bids), str(tiny_bids / "results"), "participant"]) == 64
    assert "lies inside the BIDS directory" in capsys.readouterr().err
    config = make_config([str(tiny_bids), str(tiny_bids / "derivatives" / "msxai"), "participant"])
    assert config.output_dir == tiny_bids / "derivatives" / "msxai"


def test_a_full_disk_is_one_line_and_exit_1(tiny_bids, tmp_path, capsys, monkeypatch):
    from msxai_bids import bids

    def full(output_dir, bids_dir):
        raise OSError(errno.ENOSPC, "No space left on device", str(output_dir))

    monkeypatch.setattr(bids, "write_dataset_description", full)
    out = tmp_path / "out"
    args = [str(tiny_bids), str(out), "participant", "--skip-bids-validation"]
    assert main([*args, "-w", str(tmp_path / "work")]) == 1
    err = capsys.readouterr().err
    assert f"cannot go on: [Errno 28] No space left on device: '{out}'" in err
    assert "Traceback" not in err
    (log,) = (out / "logs").glob("msxai-*.log")
    assert "Traceback" in log.read_text()  # the details stay in the log


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (
            {"flair": {"acqusition": "3D"}},
            "unknown entity 'acqusition' (did you mean 'acquisition'?)",
        ),
        ({"flair": {"suffix": "FLAIR"}, "t2w": {"run": 1}}, "unknown query 't2w'"),
    ],
)
def test_filter_file_typos_exit_64_naming_the_key(tiny_bids, tmp_path, capsys, filters, message):
    path = tmp_path / "filters.json"
    path.write_text(json.dumps(filters))
    code = main(
        [str(tiny_bids), str(tmp_path / "out"), "participant", "--bids-filter-file", str(path)]
    )
    assert code == 64
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
