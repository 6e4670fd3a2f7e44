"""`kzoo sweep --command coop` (cells run `kzoo train --method coop`) and the seed table of a --grid
that varies seed: mean ± sample std over the seeds, in sweep.json and sweep.md."""

import dataclasses
import json
import os

import numpy as np
import pytest

from kzoo.training import sweep as sweep_mod
from kzoo.training.sweep_report import seed_summary
from tests.training.test_sweep import run_cli, table
from tests.training.training_helpers import make_npz

CLIP = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "clip", "transformers")
COOP_BASE = ["--clip", "clip-dir", "--epochs", "1"]  # planning only: nothing opens the CLIP


def test_coop_target_runs_kzoo_train_method_coop():
    target = sweep_mod.get_target("coop")
    assert target.program == "kzoo train --method coop" and target.config.__name__ == "CoOpConfig"
    assert sweep_mod._train_command(["--shots", "4"], target)[1:] == ["-m", "kzoo.cli", "train", "--method", "coop",
                                                                       "--shots", "4"]
    fields = set(sweep_mod._fields(target))
    assert {"shots", "context", "position", "csc", "context_init", "seed", "lr"} <= fields
    assert not {"method", "model"} & fields  # --method is in the command words, the model is --clip's
    assert target.report == "classifier"


def test_coop_grid_cells_are_coopconfig_values_that_kzoo_train_accepts():
    from kzoo import cli
    from kzoo.vlm.config import CoOpConfig

    options, cells, _ = sweep_mod.plan(COOP_BASE, {"shots": ["1", "16"], "position": ["end", "middle"],
                                                   "csc": ["false", "true"], "seed": ["0", "1", "2"]},
                                       command="coop", grid=True)
    assert len(cells) == 2 * 2 * 2 * 3 and cells[0]["slug"] == "baseline"
    assert options["csc"]["values"] == ["false", "true"] and options["seed"]["baseline"] == "0"
    by_slug = {c["slug"]: c for c in cells}
    last = by_slug["shots=16+position=middle+csc=true+seed=2"]
    assert last["values"] == {"shots": "16", "position": "middle", "csc": "true", "seed": "2"}
    fields = {f.name for f in dataclasses.fields(CoOpConfig)}
    for cell in (cells[0], last):  # the real `kzoo train` parser takes the flags as the planned CoOpConfig
        args = cli.build_parser().parse_args(["train", "--method", "coop", *cell["flags"], "--out", "o"])
        config = CoOpConfig(**{k: v for k, v in vars(args).items() if k in fields}).validate()
        assert args.method == "coop"
        assert [str(getattr(config, f)).lower() for f in ("shots", "position", "csc", "seed")] == \
            list(cell["values"].values())
        assert config.clip == "clip-dir" and config.epochs == 1 and config.lr == 0.002  # CoOp's own default


@pytest.mark.parametrize("args, message", [
    (["--vary", "position=end,side"], "sweep cell position=side: --position 'side': expected one of end, middle"),
    (["--vary", "shots=1,two"], "--vary shots=two: argument --shots: invalid int value"),
    (["--vary", "csc=maybe"], "--vary csc=maybe: expected true or false"),
    (["--vary", "context=4,0"], "sweep cell context=0: --context must be at least 1"),
    (["--vary", "model=vit_b_16"], "it is a kzoo train option that kzoo train --method coop leaves out"),
    (["--vary", "clip-size=tiny_32"], "'clip-size' is not a kzoo train --method coop option"),
    (["--vary", "shots=1,2", "--", "--method", "clip"], "'--method' is not a kzoo train --method coop flag"),
    (["--vary", "ema=0.999"], "--ema does not apply to --method coop"),
])
def test_coop_mistakes_fail_before_anything_runs(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setattr(sweep_mod, "_launch", lambda *a: pytest.fail("a cell ran"))
    out = str(tmp_path / "sweep")
    base = [] if "--" in args else ["--", *COOP_BASE]
    code, _, stderr = run_cli(["sweep", "--out", out, "--command", "coop", "--grid", *args, *base], capsys)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kzoo sweep: error:") and message in lines[0], stderr
    assert not os.path.exists(out)


def test_a_coop_sweep_without_clip_is_refused(tmp_path, capsys):
    code, _, stderr = run_cli(["sweep", "--out", str(tmp_path / "s"), "--command", "coop", "--vary", "shots=1,2"],
                              capsys)
    assert code == 2 and "sweep cell baseline: --method coop needs --clip" in stderr


# Finished cells' test top-1 (top-5 = top-1 + 0.2); (16, "2") never finishes: its launch fails.
TOP1 = {("1", "0"): 0.60, ("1", "1"): 0.62, ("1", "2"): 0.64, ("16", "0"): 0.70, ("16", "1"): 0.71}


def test_seed_table_is_mean_and_sample_std_of_finished_cells(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "sweep")
    argv = ["sweep", "--out", out, "--command", "coop", "--grid", "--vary", "shots=1,16", "--vary", "seed=0,1,2",
            "--", *COOP_BASE]
    assert run_cli([*argv[:3], "--budget-minutes", "0", *argv[3:]], capsys)[0] == sweep_mod.EXIT_BUDGET
    for cell in json.load(open(f"{out}/sweep.json"))["cells"]:  # finished cells, as kzoo train leaves them
        key = (cell["values"]["shots"], cell["values"]["seed"])
        if key in TOP1:
            os.makedirs(f"{out}/cells/{cell['slug']}")
            with open(f"{out}/cells/{cell['slug']}/metrics.json", "w") as f:
                json.dump({"top1": TOP1[key], "top5": TOP1[key] + 0.2, "evaluated_on": "test", "shots": int(key[0]),
                           "context": 16, "position": "end", "csc": False, "epochs_completed": 1}, f)
    launched = []

    def failing_launch(command, log_stem):
        launched.append(command)
        return 1, "no training in this test"

    monkeypatch.setattr(sweep_mod, "_launch", failing_launch)
    code, stdout, _ = run_cli(argv, capsys)
    assert code == sweep_mod.EXIT_FAILED and "5/6 cells done, 1 failed" in stdout
    assert len(launched) == 1  # finished cells are never rerun; only the unfinished one is
    assert launched[0][3:6] == ["train", "--method", "coop"] and launched[0][-1].endswith("shots=16+seed=2")

    report = json.load(open(f"{out}/sweep.json"))
    summary = report["seed_summary"]
    assert summary["seeds"] == ["0", "1", "2"] and summary["options"] == ["shots"]
    one, sixteen = summary["rows"]
    assert one["values"] == {"shots": "1"} and sixteen["values"] == {"shots": "16"}
    assert one["cells"] == {"0": "baseline", "1": "seed=1", "2": "seed=2"}
    for row, shots, n in ((one, "1", 3), (sixteen, "16", 2)):
        found = [TOP1[(shots, s)] for s in "012" if (shots, s) in TOP1]
        assert row["top1"]["n"] == row["top5"]["n"] == n
        assert row["top1"]["mean"] == pytest.approx(np.mean(found))
        assert row["top1"]["std"] == pytest.approx(np.std(found, ddof=1))  # sample std, as in CoOp's tables
        assert row["top5"]["mean"] == pytest.approx(np.mean(found) + 0.2)
        assert row["top1"]["per_seed"] == {s: TOP1.get((shots, s)) for s in "012"}
    assert one["top1"]["std"] == pytest.approx(0.02)

    markdown = open(f"{out}/sweep.md").read()
    assert "Baseline: `kzoo train --method coop --epochs 1 --clip clip-dir`" in markdown
    assert len(table(markdown, "grid: shots × seed")) == 6  # the grid table is still there, a row per cell
    rows = table(markdown, "seeds: mean ± std over seed=0,1,2")
    assert rows == [["1", "62.00% ± 2.00%", "82.00% ± 2.00%", "3", "60.00%, 62.00%, 64.00%"],
                    ["16", "70.50% ± 0.71%", "90.50% ± 0.71%", "2", "70.00%, 71.00%, -"]]


def test_seed_table_only_for_a_grid_that_varies_seed(tmp_path, capsys):
    for name, args in (("no-seed", ["--grid", "--vary", "shots=1,2"]), ("one-at-a-time", ["--vary", "seed=0,1"])):
        out = str(tmp_path / name)
        argv = ["sweep", "--out", out, "--budget-minutes", "0", "--command", "coop", *args, "--", *COOP_BASE]
        assert run_cli(argv, capsys)[0] == sweep_mod.EXIT_BUDGET
        assert "seed_summary" not in json.load(open(f"{out}/sweep.json"))
        assert "## seeds" not in open(f"{out}/sweep.md").read()
    out = str(tmp_path / "seed-only")  # seed alone: one row for the base flags, nothing finished yet
    argv = ["sweep", "--out", out, "--budget-minutes", "0", "--grid", "--vary", "seed=0,1", "--", "--epochs", "1"]
    assert run_cli(argv, capsys)[0] == sweep_mod.EXIT_BUDGET
    (row,) = json.load(open(f"{out}/sweep.json"))["seed_summary"]["rows"]
    assert row["top1"] == {"mean": None, "std": None, "n": 0, "per_seed": {"0": None, "1": None}}
    assert table(open(f"{out}/sweep.md").read(), "seeds: mean ± std over seed=0,1") == [
        ["base flags", "-", "-", "0", "-, -"]]


def test_gan_seed_summary_averages_fid():
    cells = [{"slug": f"c{i}", "values": {"lr-g": "1e-4", "seed": s}, "fid": fid, "kid": 0.01}
             for i, (s, fid) in enumerate((("0", 40.0), ("1", 44.0)))]
    report = {"grid": True, "kind": "gan", "cells": cells,
              "options": {"lr-g": {"values": ["1e-4"]}, "seed": {"values": ["0", "1"]}}}
    (row,) = seed_summary(report)["rows"]
    assert row["fid"]["mean"] == 42.0 and row["fid"]["std"] == pytest.approx(np.std([40, 44], ddof=1))
    assert row["kid"]["n"] == 2 and row["kid"]["std"] == 0.0


@pytest.fixture
def toy_with_test(tmp_path):
    path = make_npz(tmp_path / "toy.npz", n=30, size=32)
    with np.load(path) as d:  # a test split: the .npz source reads x_test/y_test beside x/y
        np.savez(path, x=d["x"], y=d["y"], x_test=d["x"][:12], y_test=d["y"][:12])
    return path


def test_one_real_coop_cell(tmp_path, capsys, toy_with_test):
    out = str(tmp_path / "sweep")
    code, _, stderr = run_cli(["sweep", "--out", out, "--command", "coop", "--grid", "--vary", "seed=0", "--",
                               "--clip", CLIP, "--data", toy_with_test, "--shots", "2", "--context", "4",
                               "--epochs", "1", "--batch-size", "4"], capsys)
    (cell,) = json.load(open(f"{out}/sweep.json"))["cells"]
    assert code == 0, (stderr[-2000:], cell.get("error"))
    metrics = json.load(open(f"{out}/cells/baseline/metrics.json"))
    assert (metrics["shots"], metrics["context"], metrics["position"], metrics["csc"]) == (2, 4, "end", False)
    assert cell["test_top1"] == metrics["top1"] and cell["epochs_completed"] == 1
    (row,) = json.load(open(f"{out}/sweep.json"))["seed_summary"]["rows"]
    assert row["top1"]["n"] == 1 and row["top1"]["mean"] == metrics["top1"] and row["top1"]["std"] is None
    assert table(open(f"{out}/sweep.md").read(), "seeds: mean ± std over seed=0")[0][1] == f"{metrics['top1']:.2%}"
