"""`kzoo sweep`: studies (hyperparameters, augmentation, transfer, GAN learning rates, CoOp shots)
around a baseline `kzoo train`, `kzoo gan train` or `kzoo train --method coop` run: one option at a
time (a table and curves per varied option) or, with --grid, every combination of the varied
options' values (one table, and with seed among them a table of mean ± std over the seeds).

Every cell is a `kzoo train` (or `kzoo gan train`, --command gan-train; `kzoo train --method coop`,
--command coop) subprocess (its TensorFlow memory dies with it) writing OUT/cells/<slug>. A cell with
metrics.json is finished and never rerun, and an unfinished one is relaunched into the same
directory (the run resumes), so rerunning the same command continues an interrupted or
budget-limited sweep. OUT/sweep.json records the command, the
base flags and the options; another sweep is refused there, so results never mix.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import itertools
import json
import logging
import math
import os
import re
import shlex
import subprocess
import sys
import time
from typing import Any

from kzoo.errors import KzooError
from kzoo.training import rundir
from kzoo.training.config import TrainConfig
from kzoo.training.flags import add_train_flags
from kzoo.training.sweep_report import cell_figures, seed_summary, write_reports

log = logging.getLogger("kzoo.sweep")

_UNSET = object()  # parser default that tells "the base flags did not set this option"
_BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
# What must match for a rerun to continue a sweep, and how an error names it.
_IDENTITY = {"command": "--command", "grid": "--grid", "base": "base flags", "vary": "--vary options",
             "cell_minutes": "--cell-minutes"}
# What a sweep.json written before --command and --grid existed holds for them.
_IDENTITY_DEFAULTS = {"command": "train", "grid": False}
MAX_GRID_CELLS = 64  # a larger grid is almost always a typo (and days of training)
EXIT_FAILED, EXIT_BUDGET = 1, 3


@dataclasses.dataclass(frozen=True)
class Target:
    """What each cell of a sweep runs: a kzoo command whose flags are a config dataclass's fields.

    Example:
        >>> t = get_target("gan-train")
        >>> t.program, t.config.__name__, "label_smoothing" in t.exclude, t.report
        ('kzoo gan train', 'GanConfig', True, 'gan')
    """

    name: str  # the --command value
    argv: tuple[str, ...]  # the kzoo words before the flags
    config: type  # TrainConfig or a subclass: one flag per field
    exclude: tuple[str, ...] = ()  # fields without a flag
    help: dict[str, str] | None = None  # help texts that replace kzoo train's
    report: str = "classifier"  # sweep_report's kind: which table columns and figures

    @property
    def program(self) -> str:
        return "kzoo " + " ".join(self.argv)


def _gan_target() -> Target:
    # Imported here: kzoo.generative imports kzoo.training, so kzoo.training must not import it first.
    from kzoo.generative.config import GAN_HELP, UNUSED_TRAIN_FIELDS, GanConfig

    return Target("gan-train", ("gan", "train"), GanConfig, tuple(UNUSED_TRAIN_FIELDS), GAN_HELP, "gan")


def _coop_target() -> Target:
    # Imported here for the same reason: kzoo.vlm.config imports kzoo.training.config. --method is in
    # the command words; --model is the CLIP's (--clip), so neither is a flag to vary.
    from kzoo.vlm.config import COOP_HELP, CoOpConfig

    return Target("coop", ("train", "--method", "coop"), CoOpConfig, ("method", "model"), COOP_HELP)


_TARGETS = {"train": lambda: Target("train", ("train",), TrainConfig), "gan-train": _gan_target,
            "coop": _coop_target}
COMMANDS = tuple(_TARGETS)


def get_target(command: str) -> Target:
    """The `Target` of a --command value (train, gan-train or coop).

    Example:
        >>> get_target("train").program
        'kzoo train'
        >>> get_target("coop").program, get_target("coop").config.__name__
        ('kzoo train --method coop', 'CoOpConfig')
    """
    if command not in _TARGETS:
        raise KzooError(f"--command {command!r}: choose one of {', '.join(COMMANDS)}")
    return _TARGETS[command]()


def sweep(base: list[str], vary: dict[str, list[str]], out: str, budget_minutes: float | None = None,
          cell_minutes: float | None = None, command: str = "train", grid: bool = False) -> dict:
    """Run `kzoo train` (or `kzoo gan train`, command="gan-train"; `kzoo train --method coop`,
    command="coop") once per cell around the baseline `base`: one varied option at a time, or every
    combination of their values (grid).

    `base` holds the command's flags; `vary` maps an option (a flag name, without dashes) to its
    values. The baseline value of an option is the one in `base`, else its first value; identical
    cells (the baseline) run once. Writes OUT/sweep.md, OUT/sweep.json and the curves
    (OUT/<option>_curves.png, for GANs also <option>_losses.png; grid_*.png for a grid) and returns
    what sweep.json holds. A grid that varies seed also gets sweep.json's "seed_summary": per
    combination of the other options, the mean, sample std (n - 1), n and per-seed values of the
    main figures (test top-1 and top-5; FID for GANs), and a table of them in sweep.md.

    Example:
        >>> report = sweep(["--model", "resnet18_cifar", "--epochs", "3"],
        ...                {"lr": ["1e-2", "1e-3"], "batch-size": ["32", "64"]},
        ...                "runs/sweep", budget_minutes=120)  # doctest: +SKIP
        >>> [c["slug"] for c in report["cells"]]  # doctest: +SKIP
        ['baseline', 'lr=0.001', 'batch-size=64']
        >>> report = sweep(["--model", "dcgan_32", "--epochs", "20"], {"lr-g": ["2e-4", "4e-4"],
        ...                "lr-d": ["2e-4", "1e-4"]}, "runs/gan-lr", command="gan-train", grid=True)  # doctest: +SKIP
        >>> [c["slug"] for c in report["cells"]]  # doctest: +SKIP
        ['baseline', 'lr-d=0.0001', 'lr-g=0.0004', 'lr-g=0.0004+lr-d=0.0001']
    """
    if budget_minutes is not None and budget_minutes < 0:
        raise KzooError(f"--budget-minutes must be 0 or more, got {budget_minutes}")
    target = get_target(command)
    options, cells, base_set = plan(base, vary, cell_minutes, command, grid)
    identity = json.loads(json.dumps({"command": command, "grid": grid, "base": base_set,
                                      "vary": {o: v["values"] for o, v in options.items()},
                                      "cell_minutes": cell_minutes}))
    _check_out(out, identity)
    report = {**identity, "program": target.program, "kind": target.report, "base_flags": _flags(base_set, target),
              "options": options, "cells": cells}
    _write_json(out, report)  # before any cell: a later sweep into OUT is checked against it
    start = time.monotonic()
    for n, cell in enumerate(cells, 1):
        cell_dir = os.path.join(out, "cells", cell["slug"])
        name = f"cell {n}/{len(cells)} {cell['slug']}"
        if os.path.exists(rundir.run_file(cell_dir, "metrics")):
            cell.update(status="done", reused=True)
            log.info("%s: finished earlier, not rerun", name)
        elif budget_minutes is not None and time.monotonic() - start >= 60 * budget_minutes:
            cell["status"] = "not run (budget)"
            log.info("%s: not run, the sweep's %g-minute budget is spent", name, budget_minutes)
        else:
            _run_cell(cell, cell_dir, os.path.join(out, "logs", cell["slug"]), name, target)
        cell.update(cell_figures(cell_dir, target.report))
        summary = seed_summary(report)  # None unless seed is varied in a --grid: sweep.json keeps its shape
        if summary is not None:
            report["seed_summary"] = summary
        _write_json(out, report)
    write_reports(out, report)
    return report


def _run_cell(cell: dict, cell_dir: str, log_stem: str, name: str, target: Target) -> None:
    log.info("%s: starting %s %s", name, target.program, shlex.join(cell["flags"]))
    began = time.monotonic()
    code, last_line = _launch(_train_command([*cell["flags"], "--out", cell_dir], target), log_stem)
    done = code == 0 and os.path.exists(rundir.run_file(cell_dir, "metrics"))
    cell.update(status="done" if done else "failed", reused=False,
                error=None if done else f"exit {code}: {last_line or 'no error output'}")
    log.info("%s: %s after %.1f min", name, "done" if done else f"failed ({cell['error']})",
             (time.monotonic() - began) / 60)


def plan(base: list[str], vary: dict[str, list[str]], cell_minutes: float | None = None, command: str = "train",
         grid: bool = False) -> tuple[dict[str, dict], list[dict], dict[str, Any]]:
    """Options (flag name -> field, baseline, values, and without `grid` their cell slugs), the
    cells to run (the baseline first) and the options the base flags set, all checked before
    anything runs. `command` is the --command (train, gan-train or coop); `grid` runs every combination.

    Example:
        >>> options, cells, _ = plan(["--lr", "1e-3"], {"lr": ["1e-2", "1e-3"]})
        >>> options["lr"]["baseline"], [c["slug"] for c in cells]
        ('0.001', ['baseline', 'lr=0.01'])
        >>> _, cells, _ = plan([], {"lr-g": ["1e-4", "2e-4"], "lr-d": ["1e-4", "4e-4"]}, command="gan-train",
        ...                    grid=True)
        >>> [c["slug"] for c in cells]
        ['baseline', 'lr-d=0.0004', 'lr-g=0.0002', 'lr-g=0.0002+lr-d=0.0004']
    """
    if not vary:
        raise KzooError("nothing to sweep: give at least one --vary OPTION=V1,V2 (e.g. --vary lr=1e-2,1e-3)")
    target = get_target(command)
    parser = _train_parser(target)
    base_set = _parse_base(parser, base, target)
    _check_cell_minutes(cell_minutes, base_set, vary, target)
    options = _options(parser, vary, base_set, target)
    cells = (_grid_cells if grid else _single_cells)(options, base_set, cell_minutes, target)
    return options, cells, base_set


def _check_cell_minutes(cell_minutes: float | None, base_set: dict, vary: dict, target: Target) -> None:
    if cell_minutes is None:
        return
    if "budget_minutes" not in _fields(target):
        raise KzooError(f"--cell-minutes needs {target.program} --budget-minutes, which this kzoo lacks; leave it out")
    if not cell_minutes > 0:
        raise KzooError(f"--cell-minutes must be positive, got {cell_minutes}")
    if "budget_minutes" in base_set or any(_field(o, target) == "budget_minutes" for o in vary):
        raise KzooError("--cell-minutes and --budget-minutes in the base flags or --vary both set each "
                        "cell's budget; keep one")


def _options(parser: _Parser, vary: dict[str, list[str]], base_set: dict, target: Target) -> dict[str, dict]:
    """Each varied option's field, baseline and values (shown and parsed), the baseline's listed."""
    effective = {**_recipe_config(base_set), **base_set}  # a --recipe in the base gives baselines too
    options: dict[str, dict] = {}
    for option, texts in vary.items():
        field = _field(option, target)
        flag = field.replace("_", "-")
        if flag in options:
            raise KzooError(f"--vary {option}: {flag} is varied twice; give each option once")
        if field == "out":
            raise KzooError("--vary out: each cell's --out is OUT/cells/<slug>; vary a training option instead")
        values = [_parse_value(parser, field, text, target) for text in texts]
        if not values:
            raise KzooError(f"--vary {option}: no values; expected {flag}=V1,V2,...")
        shown = [_show(v) for v in values]
        for v in shown:
            if shown.count(v) > 1:
                raise KzooError(f"--vary {flag}: value {v} is listed twice; list each value once")
        baseline = effective[field] if field in effective else values[0]
        if _show(baseline) not in shown:  # a base-flag baseline still gets its row in the table
            values, shown = [baseline, *values], [_show(baseline), *shown]
        options[flag] = {"field": field, "baseline": _show(baseline), "values": shown, "parsed": values}
    return options


def _single_cells(options: dict[str, dict], base_set: dict, cell_minutes: float | None, target: Target
                  ) -> list[dict]:
    """One option at a time around the baseline; each option lists its cells' slugs."""
    baseline_values = {o["field"]: o["parsed"][o["values"].index(o["baseline"])] for o in options.values()}
    cells: dict[str, dict] = {}
    for flag, option in options.items():
        option["cells"] = []
        for value, shown in zip(option.pop("parsed"), option["values"]):
            values = {**baseline_values, option["field"]: value}
            slug = "baseline" if shown == option["baseline"] else _slug(f"{flag}={shown}", cells)
            if slug not in cells:
                cells[slug] = {"slug": slug, **_cell(base_set, values, cell_minutes, slug, target), "status": "pending"}
            option["cells"].append(slug)
    return [cells.pop("baseline"), *cells.values()]  # the baseline, shared by every table, first


def _grid_cells(options: dict[str, dict], base_set: dict, cell_minutes: float | None, target: Target
                ) -> list[dict]:
    """Every combination of the options' values, the baseline's first; a slug names the options
    that differ from the baseline (lr-g=0.0004+lr-d=0.0001)."""
    sizes = [len(o["values"]) for o in options.values()]
    if math.prod(sizes) > MAX_GRID_CELLS:
        shape = " x ".join(f"{n} {flag}" for n, flag in zip(sizes, options))
        raise KzooError(f"--grid: {shape} values make {math.prod(sizes)} cells, more than {MAX_GRID_CELLS}; "
                        "list fewer values")
    baseline = tuple(o["values"].index(o["baseline"]) for o in options.values())
    parsed = [o.pop("parsed") for o in options.values()]
    cells: dict[str, dict] = {}
    for combo in [baseline, *(c for c in itertools.product(*map(range, sizes)) if c != baseline)]:
        values = {o["field"]: parsed[k][i] for k, (o, i) in enumerate(zip(options.values(), combo))}
        changed = [f"{flag}={o['values'][i]}" for (flag, o), i, b in zip(options.items(), combo, baseline) if i != b]
        slug = _slug("+".join(changed), cells) if changed else "baseline"
        cells[slug] = {"slug": slug, **_cell(base_set, values, cell_minutes, slug, target), "status": "pending"}
    return list(cells.values())


def _cell(base_set: dict, values: dict, cell_minutes: float | None, slug: str, target: Target) -> dict:
    chosen = {**base_set, **values}
    if cell_minutes is not None:
        chosen["budget_minutes"] = cell_minutes
    try:  # a value the command would refuse fails the sweep now, not one cell at a time
        full = chosen
        if chosen.get("recipe"):
            from kzoo.training.recipes import expand_recipe

            full = expand_recipe(chosen["recipe"], dict(chosen))
        fields = _fields(target)
        target.config(**{k: v for k, v in full.items() if k in fields}).validate()
    except KzooError as err:
        raise KzooError(f"sweep cell {slug}: {err}") from None
    return {"flags": _flags(chosen, target), "values": {k.replace("_", "-"): _show(v) for k, v in values.items()}}


def _fields(target: Target) -> dict[str, dataclasses.Field]:
    """The config fields that are flags of the target's command."""
    return {f.name: f for f in dataclasses.fields(target.config) if f.name not in target.exclude}


def _field(option: str, target: Target) -> str:
    """Config field of an option name (lr, batch-size, --batch-size, batch_size)."""
    field = option.strip().lstrip("-").replace("-", "_")
    fields = _fields(target)
    if field not in fields:
        hint = _hint(field.replace("_", "-"), [f.replace("_", "-") for f in fields], target,
                     f"see {target.program} --help")
        raise KzooError(f"--vary {option}: {option!r} is not a {target.program} option; {hint}")
    return field


def _hint(name: str, names: list[str], target: Target, fallback: str) -> str:
    """What to tell about an option `name` that is not among the target's `names`: the names it
    starts or resembles, and that kzoo gan train leaves out kzoo train's --label-smoothing."""
    prefixed = [n for n in names if n.startswith(name)]
    if name.lstrip("-").replace("-", "_") in target.exclude:  # only resemblances by prefix: others mislead
        left_out = f"it is a kzoo train option that {target.program} leaves out"
        return (f"{left_out}; did you mean {', '.join(prefixed[:3])}?" if prefixed
                else f"{left_out} (see {target.program} --help)")
    close = list(dict.fromkeys(prefixed + difflib.get_close_matches(name, names, n=3, cutoff=0.5)))[:3]
    return f"did you mean {', '.join(close)}?" if close else fallback


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage and exit; a sweep wants one line
        raise KzooError(message)


def _train_parser(target: Target) -> _Parser:
    parser = _Parser(prog=target.program, add_help=False)
    add_train_flags(parser, target.config, target.help, exclude=target.exclude)
    parser.set_defaults(**{name: _UNSET for name in _fields(target)})
    return parser


def _parse_base(parser: _Parser, base: list[str], target: Target) -> dict[str, Any]:
    tokens = base[1:] if base[:1] == ["--"] else list(base)
    try:
        parsed, unknown = parser.parse_known_args(tokens)
    except KzooError as err:
        raise KzooError(f"base flags: {err}") from None
    if unknown:
        flags = [a.option_strings[0] for a in parser._actions if a.option_strings]
        hint = _hint(unknown[0].split("=")[0], flags, target, "sweep options (--vary, --out) go before --")
        raise KzooError(f"base flags: {unknown[0]!r} is not a {target.program} flag; {hint}")
    chosen = {k: v for k, v in vars(parsed).items() if v is not _UNSET}
    if "out" in chosen:
        raise KzooError("base flags: --out is the sweep's (cells go to OUT/cells/<slug>); give it before --")
    return chosen


def _parse_value(parser: _Parser, field: str, text: str, target: Target) -> Any:
    flag, spec = "--" + field.replace("_", "-"), _fields(target)[field]
    text = text.strip()
    if spec.type == "bool":
        if text.lower() not in _BOOLS:
            raise KzooError(f"--vary {flag[2:]}={text}: expected true or false")
        return _BOOLS[text.lower()]
    if text.lower() == "none" and spec.default is None:
        return None  # e.g. --vary freeze=none,stage4: none = leave the flag out
    try:
        return getattr(parser.parse_args([flag, text]), field)
    except KzooError as err:
        raise KzooError(f"--vary {flag[2:]}={text}: {err}") from None


def _recipe_config(chosen: dict[str, Any]) -> dict[str, Any]:
    if not chosen.get("recipe"):
        return {}
    from kzoo.training.recipes import get_recipe

    return dict(get_recipe(chosen["recipe"]).config)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _flags(chosen: dict[str, Any], target: Target) -> list[str]:
    """The target's flags for option values, in its config's field order (one canonical spelling)."""
    tokens: list[str] = []
    for name in _fields(target):
        if name not in chosen or chosen[name] is None:
            continue
        flag, value = "--" + name.replace("_", "-"), chosen[name]
        tokens += [flag if value else "--no-" + flag[2:]] if isinstance(value, bool) else [flag, _show(value)]
    return tokens


def _slug(text: str, taken: dict) -> str:
    slug = re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)[:80]
    n, unique = 2, slug
    while unique in taken:  # two values that read the same once made path-safe
        unique, n = f"{slug}-{n}", n + 1
    return unique


def _train_command(flags: list[str], target: Target) -> list[str]:
    return [sys.executable, "-m", "kzoo.cli", *target.argv, *flags]


def _launch(command: list[str], log_stem: str) -> tuple[int, str]:
    """Run one cell; its output goes to LOG_STEM.stdout.log/.stderr.log (appended on reruns)."""
    os.makedirs(os.path.dirname(log_stem), exist_ok=True)
    with open(f"{log_stem}.stdout.log", "ab") as stdout, open(f"{log_stem}.stderr.log", "ab") as stderr:
        offset = stderr.tell()
        code = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr).returncode
    with open(f"{log_stem}.stderr.log", "rb") as f:
        f.seek(max(offset, os.path.getsize(f.name) - 65536))
        lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    return code, lines[-1] if lines else ""


def _check_out(out: str, identity: dict) -> None:
    path = os.path.join(out, "sweep.json")
    if os.path.isfile(out):
        raise KzooError(f"--out {out} is a file; give a directory for the sweep")
    if os.path.exists(path):
        with open(path) as f:
            previous = {**_IDENTITY_DEFAULTS, **json.load(f)}
        changed = [name for key, name in _IDENTITY.items() if previous.get(key) != identity[key]]
        if changed:
            raise KzooError(f"--out {out} holds a sweep with other {' and '.join(changed)}; use another --out "
                            "(or that sweep's own command to continue it)")
    elif os.path.isdir(out) and os.listdir(out):
        raise KzooError(f"--out {out} is not empty and holds no sweep.json; use another --out")


def _write_json(out: str, report: dict) -> None:
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, "sweep.json.tmp")
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, os.path.join(out, "sweep.json"))  # a kill mid-write keeps the previous file


def add_parser(subparsers, parents: list[argparse.ArgumentParser] | None = None) -> argparse.ArgumentParser:
    """Register `kzoo sweep` on the `kzoo` subcommand parser.

    Example:
        >>> parser = argparse.ArgumentParser(prog="kzoo")
        >>> _ = add_parser(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["sweep", "--out", "o", "--vary", "lr=1e-3", "--", "--epochs", "2"]).base
        ['--epochs', '2']
        >>> parser.parse_args(["sweep", "--out", "o", "--command", "gan-train", "--grid"]).target_command
        'gan-train'
    """
    p = subparsers.add_parser(
        "sweep", help="vary kzoo train, kzoo gan train or CoOp options around a baseline (one at a time, or a grid)",
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=parents or [],
        description="Run kzoo train (or kzoo gan train, --command gan-train; kzoo train --method coop, --command\n"
                    "coop) once per cell: each --vary option takes each of its values while every other varied\n"
                    "option stays at its baseline (its value in the base flags, else its first value); the shared\n"
                    "baseline runs once. With --grid, every combination of the values runs instead (one table;\n"
                    "with --vary seed=..., also mean ± std over the seeds). Rerun the same command to continue.",
        epilog="example:\n  kzoo sweep --out runs/sweep --vary lr=1e-2,1e-3,1e-4 --vary batch-size=32,64 \\\n"
               "      --budget-minutes 120 -- --model resnet18_cifar --epochs 3\n"
               "  kzoo sweep --out runs/gan-lr --command gan-train --grid --vary lr-g=1e-4,2e-4,4e-4 \\\n"
               "      --vary lr-d=1e-4,2e-4 -- --model dcgan_32 --epochs 20 --fid-every 5 \\\n"
               "      --fid-extractor runs/fid_c10/best.keras\n"
               "  kzoo sweep --out runs/coop-shots --command coop --grid --vary shots=1,2,4,8,16 \\\n"
               "      --vary seed=0,1,2 -- --clip ~/clip-vit-base-patch32 --data my_images/\n\n"
               "exit status: 0 all cells done, 1 a cell failed, 2 a usage mistake, 3 cells left for the budget")
    p.add_argument("--out", required=True,
                   help="sweep directory: sweep.md, sweep.json, *_curves.png (*_losses.png), cells/, logs/")
    # dest: `command` is the kzoo subcommand's own name (error messages say "kzoo sweep: ...").
    p.add_argument("--command", dest="target_command", choices=COMMANDS, default="train",
                   help="what each cell runs: train (kzoo train), gan-train (kzoo gan train) or coop (kzoo train "
                        "--method coop) (default: train)")
    p.add_argument("--vary", action="append", default=[], metavar="OPTION=V1,V2,...",
                   help="an option of --command and its values (repeatable); true/false for on/off flags, none "
                        "to leave an optional flag out; separate values with ; when they hold commas")
    p.add_argument("--grid", action="store_true",
                   help=f"run every combination of the --vary values (at most {MAX_GRID_CELLS} cells, the "
                        "baseline's first) instead of one option at a time; one table with a column per option")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="wall clock for the whole sweep: no cell starts after it (0: list the cells only)")
    p.add_argument("--cell-minutes", type=float, default=None, help="passed to each cell as --budget-minutes")
    p.add_argument("base", nargs="*", metavar="-- TRAIN_FLAGS",
                   help="the baseline's kzoo train (or kzoo gan train) flags, after --; --command coop: kzoo train "
                        "--method coop's, without --method")
    p.set_defaults(func=_cmd_sweep)
    return p


def parse_vary(items: list[str]) -> dict[str, list[str]]:
    """`--vary` arguments as {option: values}.

    Example:
        >>> parse_vary(["lr=1e-2,1e-3", "milestones=30,60;50,75"])
        {'lr': ['1e-2', '1e-3'], 'milestones': ['30,60', '50,75']}
    """
    vary: dict[str, list[str]] = {}
    for item in items:
        option, sep, values = item.partition("=")
        texts = [v.strip() for v in values.split(";" if ";" in values else ",") if v.strip()]
        if not sep or not option.strip() or not texts:
            raise KzooError(f"--vary {item}: expected OPTION=V1,V2,... (e.g. --vary lr=1e-2,1e-3)")
        if option.strip() in vary:
            raise KzooError(f"--vary {option.strip()} is given twice; list all its values in one --vary")
        vary[option.strip()] = texts
    return vary


def _cmd_sweep(args: argparse.Namespace) -> int:
    report = sweep(args.base, parse_vary(args.vary), args.out, args.budget_minutes, args.cell_minutes,
                   args.target_command, args.grid)
    states = [c["status"] for c in report["cells"]]
    failed, left = states.count("failed"), states.count("not run (budget)")
    print(f"sweep: {states.count('done')}/{len(states)} cells done, {failed} failed, {left} not run (budget); "
          f"tables: {os.path.join(args.out, 'sweep.md')}")
    if left:
        print("rerun the same command to continue the sweep")
    return EXIT_FAILED if failed else EXIT_BUDGET if left else 0
