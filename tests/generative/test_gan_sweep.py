"""`kzoo sweep --command gan-train`: the GAN learning-rate study (lr-g x lr-d with --grid), its plan,
its checks, its report (FID/KID table, FID and D/G loss curves), and one real tiny sweep."""

import csv
import json
import os

import keras
import matplotlib.pyplot as plt
import pytest

from kzoo.training import sweep as sweep_mod
from kzoo.training.sweep_report import cell_figures
from tests.training.test_sweep import MATPLOTLIB_C0, MATPLOTLIB_C1, colour_pixels, failing_train, run_cli, table
from tests.training.training_helpers import make_npz

GAN_BASE = ["--model", "dcgan_32", "--width", "2", "--latent-dim", "8", "--batch-size", "8", "--epochs", "1",
            "--steps-per-epoch", "2", "--sample-every", "0"]
EXTRACTOR = "fid_kzoo_c10"


def write_gan_cell(cell_dir, lr_g, lr_d, epochs=2, fid=True, finished=True):
    """A GAN run directory as kzoo gan train leaves it (history.csv, metrics.json), with figures
    that follow the rates: FID 100 - 1e5 * lr_g at the last epoch, d_loss 1 + 1000 * lr_d."""
    os.makedirs(cell_dir, exist_ok=True)
    rows = []
    for epoch in range(epochs):
        row = {"epoch": epoch, "d_loss": 1 + 1000 * lr_d - 0.1 * epoch, "g_loss": 0.7 + 0.1 * epoch,
               "d_real": 0.5, "d_fake": -0.5, "lr_g": lr_g, "lr_d": lr_d}
        if fid:
            row.update(fid=100 - 1e5 * lr_g + 5 * (epochs - 1 - epoch), kid=0.0123, kid_std=0.001)
        rows.append(row)
    with open(os.path.join(cell_dir, "history.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if finished:
        last, fids = rows[-1], [r["fid"] for r in rows if "fid" in r]
        metrics = {"model": "dcgan_32", "epochs_completed": epochs, "d_loss": last["d_loss"],
                   "g_loss": last["g_loss"], "fid": last.get("fid"), "kid": last.get("kid"),
                   "kid_std": last.get("kid_std"), "best_fid": min(fids) if fids else None,
                   "fid_extractor": EXTRACTOR if fid else None, "steps_per_sec": 12.5, "wall_time_s": 90.0}
        with open(os.path.join(cell_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f)


def fake_gan_launch(fid=True, fail=()):
    """sweep._launch's stand-in: checks the command is kzoo gan train and writes its run directory
    (cells whose slug is in `fail` stop after one epoch, unfinished)."""
    def launch(command, log_stem):
        assert command[1:5] == ["-m", "kzoo.cli", "gan", "train"], command
        value = {flag: command[command.index(flag) + 1] for flag in ("--out", "--lr-g", "--lr-d") if flag in command}
        failed = os.path.basename(value["--out"]) in fail
        write_gan_cell(value["--out"], float(value.get("--lr-g", 2e-4)), float(value.get("--lr-d", 2e-4)),
                       epochs=1 if failed else 2, fid=fid, finished=not failed)
        return (1, "KzooError: diverged") if failed else (0, "")
    return launch


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the report draws, kept open (by their titles) to inspect their lines."""
    kept, close = {}, plt.close
    monkeypatch.setattr(plt, "close", lambda fig: kept.update({fig.axes[0].get_title(): fig.axes[0]}))
    yield kept
    close("all")


def header(markdown, heading):
    section = markdown.split(f"## {heading}\n", 1)[1]
    first = next(line for line in section.splitlines() if line.startswith("| "))
    return [c.strip() for c in first.strip("|").split(" | ")]


def test_plan_grid_is_every_combination_baseline_first():
    options, cells, base_set = sweep_mod.plan(["--lr-d", "2e-4", *GAN_BASE], {"lr-g": ["1e-4", "2e-4", "4e-4"],
                                              "lr-d": ["1e-4"]}, command="gan-train", grid=True)
    assert base_set["lr_d"] == 2e-4 and base_set["model"] == "dcgan_32"
    # lr-d's baseline is the base flags' 2e-4, listed first although --vary does not name it.
    assert {f: (o["baseline"], o["values"]) for f, o in options.items()} == {
        "lr-g": ("0.0001", ["0.0001", "0.0002", "0.0004"]), "lr-d": ("0.0002", ["0.0002", "0.0001"])}
    assert [c["slug"] for c in cells] == ["baseline", "lr-d=0.0001", "lr-g=0.0002", "lr-g=0.0002+lr-d=0.0001",
                                          "lr-g=0.0004", "lr-g=0.0004+lr-d=0.0001"]
    assert [(c["values"]["lr-g"], c["values"]["lr-d"]) for c in cells] == [
        ("0.0001", "0.0002"), ("0.0001", "0.0001"), ("0.0002", "0.0002"), ("0.0002", "0.0001"),
        ("0.0004", "0.0002"), ("0.0004", "0.0001")]
    flags = cells[3]["flags"]  # GanConfig's field order: kzoo train's fields, then the GAN's
    assert flags[flags.index("--lr-g"):flags.index("--lr-g") + 4] == ["--lr-g", "0.0002", "--lr-d", "0.0001"]
    assert flags[:2] == ["--model", "dcgan_32"] and "--lr" not in flags
    # One at a time (no --grid): the same options make 1 + 2 + 1 cells.
    _, single, _ = sweep_mod.plan(["--lr-d", "2e-4"], {"lr-g": ["1e-4", "2e-4", "4e-4"], "lr-d": ["1e-4"]},
                                  command="gan-train")
    assert [c["slug"] for c in single] == ["baseline", "lr-g=0.0002", "lr-g=0.0004", "lr-d=0.0001"]
    # The base's lr-g (listed second) makes the baseline; it still runs first.
    _, later, _ = sweep_mod.plan(["--lr-g", "4e-4"], {"lr-g": ["1e-4", "4e-4"], "lr-d": ["1e-4", "2e-4"]},
                                 command="gan-train", grid=True)
    assert [c["slug"] for c in later] == ["baseline", "lr-g=0.0001", "lr-g=0.0001+lr-d=0.0002", "lr-d=0.0002"]
    # A grid of one option is that option's values.
    _, one, _ = sweep_mod.plan([], {"lr-g": ["1e-4", "2e-4"]}, command="gan-train", grid=True)
    assert [c["slug"] for c in one] == ["baseline", "lr-g=0.0002"]


def test_the_target_names_the_command_and_its_flags():
    gan = sweep_mod.get_target("gan-train")
    assert sweep_mod._train_command(["--lr-g", "1"], gan)[1:] == ["-m", "kzoo.cli", "gan", "train", "--lr-g", "1"]
    assert sweep_mod._train_command(["--lr", "1"], sweep_mod.get_target("train"))[3:] == ["train", "--lr", "1"]
    assert {"lr_g", "lr_d", "fid_every"} <= set(sweep_mod._fields(gan))
    assert not {"lr", "label_smoothing", "freeze"} & set(sweep_mod._fields(gan))


@pytest.mark.parametrize("args, message", [
    (["--command", "gan-train", "--vary", "label-smoothing=0.1"],
     "'label-smoothing' is not a kzoo gan train option; it is a kzoo train option that kzoo gan train leaves out"),
    (["--command", "gan-train", "--vary", "lr=1e-3"],
     "'lr' is not a kzoo gan train option; it is a kzoo train option that kzoo gan train leaves out; did you mean "
     "lr-g, lr-d?"),
    (["--command", "gan-train", "--vary", "lr-g=1e-4", "--", "--freeze", "head"],
     "'--freeze' is not a kzoo gan train flag"),
    (["--command", "gan-train", "--vary", "lr-d=1e-4,0"], "sweep cell lr-d=0.0: --lr-d must be positive"),
    (["--command", "gan-train", "--vary", "beta-1=0.5,1.5"], "sweep cell beta-1=1.5: --beta-1 must be in [0, 1)"),
    (["--command", "gan-train", "--vary", "lr-g=1e-4", "--", "--model", "resnet18_cifar"],
     "sweep cell baseline: --model 'resnet18_cifar' is not a GAN architecture"),
    (["--command", "gan-train", "--vary", "fid-every=0,1"], "--fid-every needs --fid-extractor"),
    (["--vary", "lr-g=1e-4"], "'lr-g' is not a kzoo train option"),
    (["--command", "gan-train", "--grid", "--vary", "lr-g=1,2,3,4,5", "--vary", "lr-d=1,2,3,4", "--vary",
      "d-steps=1,2,3,4"], "--grid: 5 lr-g x 4 lr-d x 4 d-steps values make 80 cells, more than 64"),
])
def test_gan_sweep_mistakes_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    out = str(tmp_path / "sweep")
    # --budget-minutes 0: a mistake let through lists its cells instead of training them.
    code, _, stderr = run_cli(["sweep", "--out", out, "--budget-minutes", "0", *args], capsys)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kzoo sweep: error:") and message in lines[0], stderr
    assert not os.path.exists(out)


def test_a_rerun_with_another_command_or_grid_is_refused(tmp_path, capsys):
    out = str(tmp_path / "sweep")
    first = ["sweep", "--out", out, "--budget-minutes", "0", "--command", "gan-train", "--vary", "lr-g=1e-4,2e-4",
             "--", *GAN_BASE]
    assert run_cli(first, capsys)[0] == sweep_mod.EXIT_BUDGET
    saved = json.load(open(f"{out}/sweep.json"))
    assert (saved["command"], saved["grid"], saved["program"], saved["kind"]) == ("gan-train", False,
                                                                                   "kzoo gan train", "gan")
    assert table(open(f"{out}/sweep.md").read(), "lr-g")[0][-1] == "not run (budget)"
    train = ["sweep", "--out", out, "--budget-minutes", "0", "--vary", "epochs=1,2"]
    for argv, what in [(train, "other --command"), ([*first[:5], "--grid", *first[5:]], "other --grid")]:
        code, _, stderr = run_cli(argv, capsys)
        assert code == 2 and what in stderr and "use another --out" in stderr and len(stderr.splitlines()) == 1
    assert json.load(open(f"{out}/sweep.json")) == saved
    assert run_cli(first, capsys)[0] == sweep_mod.EXIT_BUDGET  # the same command still continues it


def test_grid_report_has_one_table_and_fid_and_loss_curves(tmp_path, capsys, monkeypatch, figures):
    monkeypatch.setattr(sweep_mod, "_launch", fake_gan_launch())
    out = str(tmp_path / "sweep")
    code, stdout, stderr = run_cli(["sweep", "--out", out, "--command", "gan-train", "--grid", "--vary",
                                    "lr-g=1e-4,2e-4", "--vary", "lr-d=1e-4,2e-4", "--", *GAN_BASE], capsys)
    assert code == 0 and "4/4 cells done" in stdout, stderr
    markdown = open(f"{out}/sweep.md").read()
    assert "Baseline: `kzoo gan train --model dcgan_32" in markdown and f"features of `{EXTRACTOR}`" in markdown
    assert markdown.count("\n## ") == 1
    heading = "grid: lr-g × lr-d"
    assert header(markdown, heading) == ["lr-g", "lr-d", "FID", "KID", "best FID", "last d_loss", "last g_loss",
                                         "epochs completed", "steps/s", "wall minutes", "status"]
    rows = table(markdown, heading)
    assert [r[:2] for r in rows] == [["0.0001 **(baseline)**", "0.0001"], ["0.0001", "0.0002"],
                                     ["0.0002", "0.0001"], ["0.0002", "0.0002"]]
    # FID = 100 - 1e5 * lr-g (last epoch), best = that; d_loss = 1 + 1000 * lr-d - 0.1; g_loss 0.8.
    assert rows[3][2:] == ["80.00", "0.0123 ± 0.0010", "80.00", "1.1000", "0.8000", "2", "12.50", "1.50", "done"]
    assert rows[0][2:6] == ["90.00", "0.0123 ± 0.0010", "90.00", "1.0000"]
    for suffix, what in [("curves", "FID per epoch"), ("losses", "D and G losses per epoch")]:
        assert f"![grid: {what}](grid_{suffix}.png)" in markdown and os.path.exists(f"{out}/grid_{suffix}.png")
    assert not any(name.startswith(("lr-g_", "lr-d_")) for name in os.listdir(out))

    fid_ax = figures["lr-g × lr-d: FID per epoch (every combination)"]
    assert list(fid_ax.lines[3].get_ydata()) == pytest.approx([85, 80])
    losses = figures["lr-g × lr-d: D and G losses per epoch (every combination)"].lines
    # Per cell, in the table's order: D solid then G dashed, in one colour of its own.
    assert [line.get_linestyle() for line in losses] == ["-", "--"] * 4
    colours = [line.get_color() for line in losses]
    assert colours == [c for c in ("C0", "C1", "C2", "C3") for _ in (0, 1)]
    assert list(losses[6].get_ydata()) == pytest.approx([1.2, 1.1])
    assert list(losses[7].get_ydata()) == pytest.approx([0.7, 0.8])


def test_one_option_at_a_time_without_fid_and_with_a_failed_cell(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep_mod, "_launch", fake_gan_launch(fid=False, fail=("lr-g=0.0004",)))
    out = str(tmp_path / "sweep")
    code, stdout, _ = run_cli(["sweep", "--out", out, "--command", "gan-train", "--vary", "lr-g=1e-4,2e-4,4e-4",
                               "--vary", "lr-d=1e-4,2e-4", "--", *GAN_BASE], capsys)
    assert code == sweep_mod.EXIT_FAILED and "3/4 cells done, 1 failed" in stdout
    markdown = open(f"{out}/sweep.md").read()
    assert "FID/KID: - (no cell measured them" in markdown and "features of" not in markdown
    lr_g, lr_d = table(markdown, "lr-g"), table(markdown, "lr-d")
    assert [r[0] for r in lr_g] == ["0.0001 **(baseline)**", "0.0002", "0.0004"]
    assert [r[0] for r in lr_d] == ["0.0001 **(baseline)**", "0.0002"]
    assert lr_g[0][1:] == lr_d[0][1:]  # the shared baseline
    assert lr_g[1][1:4] == ["-", "-", "-"] and lr_g[1][-1] == "done"
    # The failed cell: its one logged epoch, no metrics.json.
    assert lr_g[2][1:9] == ["-", "-", "-", "1.1000", "0.7000", "1", "-", "-"]
    assert lr_g[2][-1] == "failed: exit 1: KzooError: diverged"
    for option in ("lr-g", "lr-d"):  # FID was off: loss curves only
        assert not os.path.exists(f"{out}/{option}_curves.png") and f"({option}_curves.png)" not in markdown
        png = f"{out}/{option}_losses.png"
        assert f"![{option}: D and G losses per epoch]({option}_losses.png)" in markdown
        assert colour_pixels(png, MATPLOTLIB_C0) > 10 and colour_pixels(png, MATPLOTLIB_C1) > 10, option


def test_gan_cell_figures_read_history_and_metrics(tmp_path):
    write_gan_cell(str(tmp_path / "run"), 2e-4, 1e-4, epochs=3)
    cell = cell_figures(str(tmp_path / "run"), "gan")
    assert cell["fid"] == pytest.approx(80) and cell["best_fid"] == pytest.approx(80)
    assert cell["fid_per_epoch"] == pytest.approx([90, 85, 80]) and cell["g_loss_per_epoch"] == pytest.approx(
        [0.7, 0.8, 0.9])
    assert cell["fid_extractor"] == EXTRACTOR and cell["epochs_completed"] == 3 and cell["wall_minutes"] == 1.5
    assert cell_figures(str(tmp_path / "missing"), "gan")["d_loss_per_epoch"] == []


def test_failing_gan_cells_run_kzoo_gan_train(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep_mod, "_train_command", failing_train)
    out = str(tmp_path / "sweep")
    code, _, _ = run_cli(["sweep", "--out", out, "--command", "gan-train", "--vary", "lr-d=1e-4,3e-4", "--",
                          *GAN_BASE], capsys)
    assert code == sweep_mod.EXIT_FAILED
    error = json.load(open(f"{out}/sweep.json"))["cells"][1]["error"]
    assert error.startswith("exit 3: boom: gan train --model dcgan_32") and "--lr-d 0.0003" in error


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the cells are subprocesses of the TensorFlow run's backend; one real sweep is enough")
def test_real_gan_grid_sweep(tmp_path, capsys):
    data = make_npz(tmp_path / "toy.npz", n=40, size=32)
    out = str(tmp_path / "sweep")
    code, stdout, stderr = run_cli(["sweep", "--out", out, "--command", "gan-train", "--grid", "--vary",
                                    "lr-g=1e-4,3e-4", "--vary", "lr-d=2e-4", "--", *GAN_BASE, "--data", data], capsys)
    assert code == 0 and "2/2 cells done" in stdout, stderr[-3000:]
    rows = table(open(f"{out}/sweep.md").read(), "grid: lr-g × lr-d")
    assert [r[:2] for r in rows] == [["0.0001 **(baseline)**", "0.0002"], ["0.0003", "0.0002"]]
    for row, slug, lr_g in zip(rows, ("baseline", "lr-g=0.0003"), (1e-4, 3e-4)):
        config = json.load(open(f"{out}/cells/{slug}/config.json"))
        assert (config["lr_g"], config["lr_d"]) == (lr_g, 2e-4)
        metrics = json.load(open(f"{out}/cells/{slug}/metrics.json"))
        assert row[2:5] == ["-", "-", "-"]  # FID off
        assert row[5:8] == [f"{metrics['d_loss']:.4f}", f"{metrics['g_loss']:.4f}", "1"] and row[-1] == "done"
    assert os.path.exists(f"{out}/grid_losses.png") and not os.path.exists(f"{out}/grid_curves.png")
    png = f"{out}/grid_losses.png"
    assert colour_pixels(png, MATPLOTLIB_C0) > 10 and colour_pixels(png, MATPLOTLIB_C1) > 10
