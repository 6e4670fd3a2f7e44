"""The CLI a new user meets first: complete help, fast start, quiet start, readable listings."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from kzoo.cli import build_parser, main
from kzoo.native_log import filtered_stderr, is_noise
from kzoo.generative.config import UNUSED_TRAIN_FIELDS, GanConfig
from kzoo.selfsup.config import PretrainConfig
from kzoo.training.config import TrainConfig
from kzoo.vlm.config import CLIPTrainConfig, CoOpConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMANDS = ["train", "eval", "robustness", "recipes", "sweep", "augment-grid", "models", "predict", "explain",
            "pretrain", "probe", "export", "serve", "launch", "gan train", "gan sample", "zeroshot"]
CONFIGS = {"train": TrainConfig, "pretrain": PretrainConfig, "gan train": GanConfig}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every runnable command by its name ("gan train" for a command inside a group)."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = {}
    for name, sub in action.choices.items():
        if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
            commands.update({f"{name} {inner}": p for inner, p in _subparsers(sub).items()})
        else:
            commands[name] = sub
    return commands


def test_every_command_is_listed_with_a_description_and_an_example():
    commands = _subparsers(build_parser())
    assert sorted(commands) == sorted(COMMANDS)
    for name, sub in commands.items():
        assert sub.description and len(sub.description) > 30, name
        assert sub.epilog and "example:" in sub.epilog and f"kzoo {name}" in sub.epilog, name


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_has_help_and_says_its_default(command):
    sub = _subparsers(build_parser())[command]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"kzoo {command} {name} has no help"
        takes_value = action.option_strings and action.nargs != 0 and not action.required
        if takes_value and action.dest in getattr(CONFIGS.get(command), "__dataclass_fields__", {}):
            # train's and pretrain's defaults are their configs' (hidden from argparse so a recipe can
            # tell them apart).
            default = getattr(CONFIGS[command](), action.dest)
            if default not in (None, [], False):
                assert f"(default: {default})" in action.help, f"kzoo {command} {name}: default {default} not in help"
        elif takes_value and action.default not in (None, argparse.SUPPRESS, False, []):
            shown = ",".join(map(str, action.default)) if isinstance(action.default, list) else str(action.default)
            assert f"default: {shown}" in action.help, f"kzoo {command} {name}: default {shown} not in help"


@pytest.mark.parametrize("command", sorted(CONFIGS))
def test_every_config_field_is_a_documented_flag(command):
    parser = _subparsers(build_parser())[command]
    dests = {a.dest: a for a in parser._actions}
    # Fields with no flag on purpose: classifier-only ones for a GAN, labels-only ones for SimCLR.
    unused = {"gan train": UNUSED_TRAIN_FIELDS, "pretrain": ("shots",)}.get(command, ())
    fields = dict(CONFIGS[command].__dataclass_fields__)
    if command == "train":  # --method coop / clip add their configs' fields to kzoo train
        fields.update(CoOpConfig.__dataclass_fields__, **CLIPTrainConfig.__dataclass_fields__)
    for field in fields:
        assert (field in unused) != (field in dests), f"kzoo {command} --{field.replace('_', '-')}"
        if field in unused:
            continue
        assert field in dests and dests[field].help, f"kzoo {command} --{field.replace('_', '-')} lacks help"


def test_eval_split_lists_its_values(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    assert "{train,val,test}" in out and "(default: test)" in out


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["eval", "--help"], ["sweep", "--help"],
                                  ["models"], ["recipes"], ["models", "resnet*", "--pretrained"]])
def test_help_and_listings_start_neither_keras_nor_tensorflow(argv):
    # The 10-second start a new user saw was TensorFlow's import: these commands must not need it.
    code = ("import sys\nfrom kzoo.cli import main\n"
            f"try:\n    code = main({argv!r})\nexcept SystemExit as e:\n    code = e.code\n"
            "heavy = sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules)\n"
            "print('HEAVY', heavy, code, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": REPO}, timeout=120)
    assert "HEAVY [] 0" in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.strip()


def test_models_columns_line_up_with_long_family_names(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any("odconv_gtsrb  " in line for line in lines)  # the longest family name in use
    # The input-size column (NxNx3) starts at the same offset on every line.
    starts = {line.index(next(tok for tok in line.split() if "x" in tok and tok[0].isdigit())) for line in lines}
    assert len(starts) == 1, starts


def test_models_pattern_without_match_is_one_line(capsys):
    assert main(["models", "nothing_like_this*"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no registered model matches 'nothing_like_this*'" in err[0]


def test_noise_patterns_cover_tensorflows_start_up_notes_only():
    notes = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796200347.648475    2258 port.cc:153] oneDNN custom operations are on. You may see...",
        "I0000 00:00:1796200347.649028    2258 cudart_stub.cc:31] Could not find cuda drivers on your machine.",
        "E0000 00:00:1796200481.963167    3373 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
        "E0000 00:00:1796207381.618204    6264 util.cc:131] oneDNN supports DT_INT32 only on platforms with "
        "AVX-512. Falling back to the default Eigen-based implementation if present.",
        "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with "
        "the appropriate compiler flags.",
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    ]
    kept = ["kzoo train: error: unknown model 'x'", "W0000 00:00:1.0 123 foo.cc:1] a real warning",
            "E0000 00:00:1.0 123 bar.cc:9] a real error", "images are shrunk 4.0x (128x128 -> 32x32)"]
    assert all(is_noise(line) for line in notes)
    assert not any(is_noise(line) for line in kept)


def test_filtered_stderr_drops_native_notes_and_keeps_the_rest(capfd):
    # Descriptor writes only: pytest's capture sends sys.stderr around descriptor 2 (in the CLI,
    # logging writes to descriptor 2 and goes through the same filter, in order).
    with filtered_stderr():
        os.write(2, b"I0000 00:00:1796200347.648475    2258 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"a real warning\n")
        os.write(2, b"E0000 00:00:1796200481.963167    3373 cuda_platform.cc:52] failed call to cuInit: x\n")
        os.write(2, b"an unfinished line")
    os.write(2, b"\nafter\n")
    assert capfd.readouterr().err.splitlines() == ["a real warning", "an unfinished line", "after"]


@pytest.mark.tf_only
def test_tensorflow_start_is_quiet_unless_verbose():
    code = ("import sys\nfrom kzoo.native_log import filtered_stderr\n"
            "with filtered_stderr(enabled=sys.argv[1] == 'quiet'):\n"
            "    import tensorflow as tf\n    tf.config.list_physical_devices()\n"
            "print('started', file=sys.stderr)")
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    quiet, loud = (subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, env=env,
                                  timeout=120) for mode in ("quiet", "verbose"))
    assert quiet.stderr.strip() == "started", quiet.stderr
    assert any(is_noise(line) for line in loud.stderr.splitlines())  # the notes exist: the filter removed them


def test_filtered_stderr_shows_a_redrawn_progress_line_before_its_newline(capfd):
    import time

    with filtered_stderr():
        os.write(2, b"\r 10%|#  |\r 20%|## |")
        time.sleep(0.3)  # the forwarder runs on its own thread
        shown = capfd.readouterr().err
        os.write(2, b"\n")
    assert shown == "\r 10%|#  |\r"

