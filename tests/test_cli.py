"""The command line: every option documented, eval writes its files, bad input gives one clear line."""

import json
import subprocess
import sys

import pytest

from l2o.cli import build_parser, main


def _subparsers(parser):
    return next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices


def test_every_option_of_every_command_has_help():
    for name, sub in _subparsers(build_parser()).items():
        for action in sub._actions:
            assert action.help, f"l2o {name}: option {action.option_strings or action.dest} has no help"


def test_help_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "l2o", "eval", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "--optimizer" in out and "--seeds" in out


def test_eval_writes_curves_csv_and_png(tmp_path, capsys):
    rc = main(["eval", "--task", "quadratic", "--optimizer", "adam:lr=0.05", "--optimizer", "sgd:lr=0.01",
               "--tune", "adam", "--lr-grid", "0.01,0.1", "--steps", "20", "--seeds", "2",
               "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    labels = [s["label"] for s in last["summary"]]
    assert labels[:2] == ["adam(lr=0.05)", "sgd(lr=0.01)"] and labels[2].startswith("tuned adam(lr=0.1")
    for f in ("results.json", "curves.csv", "curves.png"):
        assert (tmp_path / f).stat().st_size > 0


def test_eval_defaults_to_the_storage_root(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("L2O_STORAGE", str(tmp_path))
    assert main(["eval", "--task", "quadratic", "--steps", "5", "--seeds", "1", "--no-progress"]) == 0
    (out,) = (tmp_path / "eval").iterdir()
    assert out.name.startswith("quadratic-") and (out / "curves.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--optimizer", "adamm"], "unknown optimizer"),
    (["--task-opt", "hiddn=3"], "unknown setting"),
    (["--task-opt", "batch_size=lots"], "expected an integer"),
    (["--task", "cifar_half_cnn", "--offline"], "L2O_DATA"),
])
def test_bad_input_is_one_clear_line(argv, message, tmp_path, capsys):
    assert main(["eval", "--steps", "2", "--seeds", "1", "--no-progress", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
