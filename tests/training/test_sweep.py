"""`kzoo sweep`: one option at a time around a shared baseline, resumable reruns, budgets, errors."""

import argparse
import dataclasses
import json
import logging
import os
import sys

import numpy as np
import pytest
from PIL import Image

from kzoo.errors import KzooError
from kzoo.training import sweep as sweep_mod
from kzoo.training.config import TrainConfig

# Bundled sample, smallest model, two steps: a cell is a few seconds of training plus start-up.
BASE = ["--model", "vit_cifar_tiny", "--image-size", "16", "--epochs", "1", "--steps-per-epoch", "2",
        "--batch-size", "16", "--no-jit-compile"]
MATPLOTLIB_C0, MATPLOTLIB_C1 = (31, 119, 180), (255, 127, 14)  # the first two line colours


def run_cli(argv, capsys):
    """`kzoo ...` in this process: (exit status, stdout, stderr). Uses kzoo.cli.main once `sweep`
    is wired into it; until then a parser that handles errors as main does."""
    from kzoo import cli

    subcommands = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if "sweep" in subcommands.choices:
        code = cli.main(argv)
    else:
        parser = argparse.ArgumentParser(prog="kzoo")
        sweep_mod.add_parser(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        try:
            code = args.func(args)
        except KzooError as err:
            print(f"kzoo {args.command}: error: {err}", file=sys.stderr)
            code = 2
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table(markdown, option):
    """Rows of the markdown table under `## option` as lists of cell texts."""
    section = markdown.split(f"## {option}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in row.strip("|").split(" | ")] for row in rows[1:]]  # without the header


def colour_pixels(path, rgb):
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    return int((pixels == rgb).all(axis=1).sum())


def test_sweep_runs_each_cell_once_and_reruns_nothing(tmp_path, capsys, caplog, monkeypatch):
    out = str(tmp_path / "sweep")
    argv = ["sweep", "--out", out, "--vary", "lr=1e-3,2e-3", "--vary", "jit-compile=true,false", "--", *BASE]
    code, stdout, _ = run_cli([*argv[:3], "--budget-minutes", "0", *argv[3:]], capsys)
    assert code == sweep_mod.EXIT_BUDGET and "0/3 cells done" in stdout
    assert not os.path.exists(os.path.join(out, "cells"))  # nothing started
    assert all(c["status"] == "not run (budget)" for c in json.load(open(f"{out}/sweep.json"))["cells"])
    assert table(open(f"{out}/sweep.md").read(), "lr")[0][-1] == "not run (budget)"

    caplog.set_level(logging.INFO, logger="kzoo.sweep")
    code, stdout, stderr = run_cli(argv, capsys)  # the same command without a budget continues
    assert code == 0, stderr[-3000:]
    report = json.load(open(f"{out}/sweep.json"))
    # lr's baseline is its first value; jit-compile's is the base's --no-jit-compile, listed second.
    assert [c["slug"] for c in report["cells"]] == ["baseline", "lr=0.002", "jit-compile=true"]
    assert sorted(os.listdir(f"{out}/cells")) == ["baseline", "jit-compile=true", "lr=0.002"]
    assert sum("starting kzoo train" in r.message for r in caplog.records) == 3
    assert sum(" done after " in r.message for r in caplog.records) == 3
    configs = {c: json.load(open(f"{out}/cells/{c}/config.json")) for c in os.listdir(f"{out}/cells")}
    assert (configs["baseline"]["lr"], configs["baseline"]["jit_compile"]) == (0.001, False)
    assert (configs["lr=0.002"]["lr"], configs["lr=0.002"]["jit_compile"]) == (0.002, False)
    assert (configs["jit-compile=true"]["lr"], configs["jit-compile=true"]["jit_compile"]) == (0.001, True)
    for cell in report["cells"]:
        metrics = json.load(open(f"{out}/cells/{cell['slug']}/metrics.json"))
        assert cell["status"] == "done" and cell["test_top1"] == metrics["top1"]
        assert cell["epochs_completed"] == 1 and len(cell["val_accuracy"]) == 1
        assert 0 <= cell["train_top1"] <= 1 and cell["images_per_sec"] > 0 and cell["wall_minutes"] > 0

    markdown = open(f"{out}/sweep.md").read()
    lr_rows, jit_rows = table(markdown, "lr"), table(markdown, "jit-compile")
    assert [r[0] for r in lr_rows] == ["0.001 **(baseline)**", "0.002"]
    assert [r[0] for r in jit_rows] == ["true", "false **(baseline)**"]
    assert lr_rows[0][1:] == jit_rows[1][1:]  # one shared baseline cell in both tables
    baseline = report["cells"][0]
    assert lr_rows[0][2] == f"{baseline['test_top1']:.2%}" and lr_rows[0][4] == "1"
    for option in ("lr", "jit-compile"):
        png = f"{out}/{option}_curves.png"
        assert Image.open(png).size[0] >= 500
        # One marker/line per cell of the option, in matplotlib's first two colours.
        assert colour_pixels(png, MATPLOTLIB_C0) > 10 and colour_pixels(png, MATPLOTLIB_C1) > 10, option

    before = {c: os.path.getmtime(f"{out}/cells/{c}/metrics.json") for c in configs}
    monkeypatch.setattr(sweep_mod, "_launch", lambda *a: pytest.fail("a finished cell was relaunched"))
    code, stdout, _ = run_cli(argv, capsys)
    assert code == 0 and "3/3 cells done" in stdout
    assert {c: os.path.getmtime(f"{out}/cells/{c}/metrics.json") for c in configs} == before
    assert table(open(f"{out}/sweep.md").read(), "lr") == lr_rows


def test_plan_baselines_and_shared_cells():
    options, cells, base_set = sweep_mod.plan(
        ["--lr", "0.001", "--batch-size", "128"],
        {"lr": ["1e-2", "1e-3", "1e-4"], "batch-size": ["32", "64"], "freeze": ["none", "head"]})
    assert base_set == {"lr": 0.001, "batch_size": 128}
    assert options["lr"] == {"field": "lr", "baseline": "0.001", "values": ["0.01", "0.001", "0.0001"],
                             "cells": ["lr=0.01", "baseline", "lr=0.0001"]}
    # The base sets batch-size 128: its row comes first although --vary does not list it.
    assert options["batch-size"]["values"] == ["128", "32", "64"] and options["batch-size"]["baseline"] == "128"
    assert options["freeze"]["cells"] == ["baseline", "freeze=head"]
    assert [c["slug"] for c in cells] == ["baseline", "lr=0.01", "lr=0.0001", "batch-size=32", "batch-size=64",
                                          "freeze=head"]
    flags = {c["slug"]: c["flags"] for c in cells}
    assert flags["baseline"] == ["--batch-size", "128", "--lr", "0.001"]  # freeze=none: no --freeze flag
    assert flags["freeze=head"] == ["--batch-size", "128", "--lr", "0.001", "--freeze", "head"]
    assert flags["lr=0.01"] == ["--batch-size", "128", "--lr", "0.01"]


@pytest.mark.parametrize("args, message", [
    (["--vary", "lr"], "--vary lr: expected OPTION=V1,V2"),
    (["--vary", "lr="], "--vary lr=: expected OPTION=V1,V2"),
    (["--vary", "lrate=1e-3,1e-2"], "'lrate' is not a kzoo train option; did you mean lr"),
    (["--vary", "batch-sise=16,32"], "did you mean batch-size"),
    (["--vary", "batch-size=16,big"], "--vary batch-size=big: argument --batch-size: invalid int value"),
    (["--vary", "jit-compile=maybe"], "--vary jit-compile=maybe: expected true or false"),
    (["--vary", "lr=1e-3,-1"], "sweep cell lr=-1.0: --lr must be positive"),
    (["--vary", "lr=1e-3,0.001"], "value 0.001 is listed twice"),
    (["--vary", "lr=1e-3", "--", "--lrr", "1"], "'--lrr' is not a kzoo train flag; did you mean --lr"),
    (["--vary", "lr=1e-3", "--", "--out", "x"], "--out is the sweep's"),
    ([], "nothing to sweep"),
])
def test_user_mistakes_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    out = str(tmp_path / "sweep")
    code, _, stderr = run_cli(["sweep", "--out", out, *args], capsys)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kzoo sweep: error:") and message in lines[0], stderr
    assert not os.path.exists(out)


def test_another_sweep_into_the_same_out_is_refused(tmp_path, capsys):
    out = str(tmp_path / "sweep")
    first = ["sweep", "--out", out, "--budget-minutes", "0", "--vary", "lr=1e-3,2e-3", "--", *BASE]
    assert run_cli(first, capsys)[0] == sweep_mod.EXIT_BUDGET
    saved = open(f"{out}/sweep.json").read()
    for other, what in [(["--vary", "lr=1e-3,5e-3", "--", *BASE], "other --vary options"),
                        (["--vary", "lr=1e-3,2e-3", "--", *BASE, "--seed", "1"], "other base flags")]:
        code, _, stderr = run_cli(["sweep", "--out", out, "--budget-minutes", "0", *other], capsys)
        assert code == 2 and what in stderr and "use another --out" in stderr and len(stderr.splitlines()) == 1
    assert open(f"{out}/sweep.json").read() == saved
    assert run_cli(first, capsys)[0] == sweep_mod.EXIT_BUDGET  # the same command still continues it
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("not a sweep")
    code, _, stderr = run_cli(["sweep", "--out", str(tmp_path / "busy"), "--vary", "lr=1e-3"], capsys)
    assert code == 2 and "holds no sweep.json" in stderr


# Stands in for `kzoo train`: fails after two lines of stderr, the last one naming its flags.
FAILING_TRAIN = "import sys; sys.stderr.write('warming up\\nboom: ' + ' '.join(sys.argv[1:]) + '\\n'); sys.exit(3)"


def failing_train(flags, target):
    """sweep._train_command's stand-in: FAILING_TRAIN given the kzoo words (train, gan train) and flags."""
    return [sys.executable, "-c", FAILING_TRAIN, *target.argv, *flags]


def test_failed_cells_are_recorded_and_the_sweep_goes_on(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep_mod, "_train_command", failing_train)
    out = str(tmp_path / "sweep")
    code, stdout, _ = run_cli(["sweep", "--out", out, "--vary", "lr=1e-3,2e-3", "--", *BASE], capsys)
    assert code == sweep_mod.EXIT_FAILED and "0/2 cells done, 2 failed" in stdout
    cells = json.load(open(f"{out}/sweep.json"))["cells"]
    assert [c["status"] for c in cells] == ["failed", "failed"]  # the second ran after the first failed
    assert cells[1]["error"].startswith("exit 3: boom: ") and "--lr 0.002" in cells[1]["error"]
    assert f"--out {out}/cells/lr=0.002" in cells[1]["error"]
    assert table(open(f"{out}/sweep.md").read(), "lr")[1][-1].startswith("failed: exit 3: boom:")
    assert os.path.exists(f"{out}/lr_curves.png")


def test_cell_minutes_become_each_cells_budget(tmp_path, monkeypatch):
    if "budget_minutes" not in {f.name for f in dataclasses.fields(TrainConfig)}:
        pytest.skip("kzoo train has no --budget-minutes yet (TrainConfig.budget_minutes is being added)")
    monkeypatch.setattr(sweep_mod, "_train_command", failing_train)
    report = sweep_mod.sweep(BASE, {"lr": ["1e-3"]}, str(tmp_path / "sweep"), cell_minutes=0.5)
    assert "--budget-minutes 0.5" in report["cells"][0]["error"]
    with pytest.raises(KzooError, match="keep one"):
        sweep_mod.sweep([*BASE, "--budget-minutes", "2"], {"lr": ["1e-3"]}, str(tmp_path / "other"), cell_minutes=1)


def fake_train_launch(command, log_stem):
    """sweep._launch's stand-in for kzoo train: a finished two-epoch run whose accuracies follow --lr."""
    assert command[1:4] == ["-m", "kzoo.cli", "train"], command
    out, lr = command[command.index("--out") + 1], float(command[command.index("--lr") + 1])
    os.makedirs(out)
    with open(f"{out}/history.csv", "w") as f:
        f.write(f"epoch,accuracy,val_accuracy\n0,0.3,{100 * lr}\n1,0.5,{200 * lr}\n")
    with open(f"{out}/metrics.json", "w") as f:
        json.dump({"top1": 200 * lr, "top5": 0.9, "evaluated_on": "test", "epochs_completed": 2,
                   "images_per_sec": 100.0, "wall_time_s": 60.0}, f)
    return 0, ""


def test_grid_runs_every_combination_in_one_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep_mod, "_launch", fake_train_launch)
    out = str(tmp_path / "sweep")
    argv = ["sweep", "--out", out, "--grid", "--vary", "lr=1e-3,2e-3", "--vary", "batch-size=32", "--", *BASE]
    code, stdout, _ = run_cli(argv, capsys)
    assert code == 0 and "4/4 cells done" in stdout
    report = json.load(open(f"{out}/sweep.json"))
    assert report["grid"] is True and report["command"] == "train"
    # batch-size's baseline is the base's 16: every combination, the baseline's first.
    assert [c["slug"] for c in report["cells"]] == ["baseline", "batch-size=32", "lr=0.002",
                                                    "lr=0.002+batch-size=32"]
    flags = [c["flags"] for c in report["cells"]]
    assert [(f[f.index("--lr") + 1], f[f.index("--batch-size") + 1]) for f in flags] == [
        ("0.001", "16"), ("0.001", "32"), ("0.002", "16"), ("0.002", "32")]
    markdown = open(f"{out}/sweep.md").read()
    assert markdown.count("\n## ") == 1 and "One row per combination" in markdown
    rows = table(markdown, "grid: lr × batch-size")
    assert [r[:2] for r in rows] == [["0.001 **(baseline)**", "16"], ["0.001", "32"], ["0.002", "16"],
                                     ["0.002", "32"]]
    assert rows[3][2:] == ["50.00%", "40.00%", "90.00%", "2", "100", "1.00", "done"]
    assert "![grid: validation top-1 per epoch](grid_curves.png)" in markdown
    assert not os.path.exists(f"{out}/lr_curves.png")
    png = f"{out}/grid_curves.png"
    assert colour_pixels(png, MATPLOTLIB_C0) > 10 and colour_pixels(png, MATPLOTLIB_C1) > 10
    code, _, stderr = run_cli([a for a in argv if a != "--grid"], capsys)  # one at a time: another sweep
    assert code == 2 and "other --grid" in stderr


def test_a_sweep_from_before_command_and_grid_continues(tmp_path, capsys):
    out = str(tmp_path / "sweep")
    argv = ["sweep", "--out", out, "--budget-minutes", "0", "--vary", "lr=1e-3,2e-3", "--", *BASE]
    assert run_cli(argv, capsys)[0] == sweep_mod.EXIT_BUDGET
    report = json.load(open(f"{out}/sweep.json"))
    for key in ("command", "grid", "program", "kind"):
        del report[key]
    json.dump(report, open(f"{out}/sweep.json", "w"))
    assert run_cli(argv, capsys)[0] == sweep_mod.EXIT_BUDGET
    assert "Baseline: `kzoo train " in open(f"{out}/sweep.md").read()
