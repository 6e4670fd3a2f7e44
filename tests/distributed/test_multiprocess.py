"""Several processes of one job on this CPU (JAX, gloo collectives, 127.0.0.1 only), through the real
`kzoo launch` / `kzoo train` commands: the same weights as one process with the same global batch,
one writer, a killed process stopping the job, a rerun resuming it, and one-line errors."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from kzoo.distributed.launcher import free_port
from kzoo.training import rundir
from kzoo.training.api import load_checkpoint
from tests.training.training_helpers import REPO, make_npz, run_kzoo

JAX = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
COMMON = ["--model", "vit_cifar_tiny", "--image-size", "16", "--val-split", "0.2", "--augment", "none"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_npz(tmp_path_factory.mktemp("mp") / "toy.npz", n=400)


def launch(*train_args, nproc=2, env=None, check=False, timeout=300):
    return run_kzoo("launch", "--nproc", str(nproc), "--grace", "5", "--", "train", *train_args,
                    env={**JAX, **(env or {})}, check=check, timeout=timeout)


def weights(path):
    model = load_checkpoint(path)
    return model.get_weights(), int(np.asarray(model.optimizer.iterations))


def test_two_processes_reach_the_weights_of_one_process_with_the_same_global_batch(toy, tmp_path):
    steps = ["--epochs", "2", "--steps-per-epoch", "10", "--data", toy, *COMMON]
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    run_kzoo("train", *steps, "--batch-size", "16", "--lr", "0.002", "--out", one, env=JAX, check=True)
    # 2 processes x 8 images = the same global batch of 16; the rate given for one replica is doubled
    proc = launch(*steps, "--batch-size", "8", "--lr", "0.001", "--out", two, check=True)
    (w1, it1), (w2, it2) = weights(os.path.join(one, "last.keras")), weights(os.path.join(two, "last.keras"))
    assert it1 == it2 == 20
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(w1, w2)) < 1e-5
    metrics = json.load(open(os.path.join(two, "metrics.json")))
    assert (metrics["processes"], metrics["replicas"], metrics["global_batch"]) == (2, 2, 16)
    # one writer: one summary line, one TensorBoard event file, the batch and rate said once
    assert proc.stdout.count("vit_cifar_tiny: top-1") == 1
    assert len(glob.glob(os.path.join(two, "tensorboard", "train", "events.*"))) == 1
    assert proc.stderr.count("global batch 16 (8 per replica); learning rate 0.001 x 2 = 0.002") == 1


def _children(parent: int) -> dict[int, int]:
    """{process id in the job: pid} of the launcher's children."""
    found = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            pid, fields = int(stat.split("/")[2]), open(stat).read().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
                index = next(e for e in env if e.startswith(b"KERAS_DISTRIBUTION_PROCESS_ID="))
                found[int(index.split(b"=")[1])] = pid
        except (OSError, StopIteration, ValueError):
            continue
    return found


@pytest.mark.slow
def test_killed_process_stops_the_job_in_one_line_and_a_rerun_resumes_to_the_full_step_count(toy, tmp_path):
    out = str(tmp_path / "run")
    args = ["--data", toy, *COMMON, "--epochs", "3", "--steps-per-epoch", "10", "--batch-size", "8",
            "--backup-steps", "4", "--out", out]
    command = [sys.executable, "-m", "kzoo.cli", "launch", "--nproc", "2", "--grace", "5", "--", "train", *args]
    env = {**os.environ, **JAX, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(rundir.read_history(out)) < 1:
        assert proc.poll() is None, f"the job ended before it could be killed: {proc.communicate()[1][-2000:]}"
        time.sleep(0.2)
    os.kill(_children(proc.pid)[1], signal.SIGKILL)
    killed = time.time()
    _, stderr = proc.communicate(timeout=60)
    assert time.time() - killed < 30 and proc.returncode == 128 + signal.SIGKILL
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("kzoo launch: error: process 1 (pid ") and "was killed by SIGKILL; stopped the other 1 " \
        "process; rerun the same command" in last
    assert not os.path.exists(os.path.join(out, "metrics.json"))

    # the same settings in one process (one device) would change the global batch: refused
    alone = run_kzoo("train", *args, "--distribute", "data-parallel", env=JAX)
    assert alone.returncode == 2 and alone.stderr.strip().splitlines()[-1].endswith(
        "was trained by 2 replica(s) in 2 process(es), this run has 1 in 1: resume with the same processes and "
        "devices (the global batch would change), or choose another --out")
    resumed = launch(*args, check=True)
    assert "resuming" in resumed.stderr
    _, iterations = weights(os.path.join(out, "last.keras"))
    assert iterations == 3 * 10  # the same optimizer steps as a run never interrupted
    assert [int(r["epoch"]) for r in rundir.read_history(out)] == [0, 1, 2]


def test_processes_started_with_other_settings_stop_with_one_line_each_and_write_nothing(toy, tmp_path):
    out = str(tmp_path / "run")
    coordinator = f"127.0.0.1:{free_port()}"
    env = {**os.environ, **JAX, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    procs = [subprocess.Popen([sys.executable, "-m", "kzoo.cli", "train", "--data", toy, *COMMON, "--out", out,
                               "--lr", lr, "--num-processes", "2", "--process-id", str(i), "--coordinator",
                               coordinator], env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
             for i, lr in enumerate(["0.001", "0.002"])]
    errors = [p.communicate(timeout=120)[1].strip().splitlines() for p in procs]
    assert [p.returncode for p in procs] == [2, 2]
    assert errors[0][-1] == ("kzoo train: error: process(es) 1 were started with other settings than process 0: "
                             "start every process with the same command")
    assert errors[1][-1].startswith("kzoo train: error: process 1 was started with other settings than process 0 "
                                    "(lr 0.002 here vs 0.001 on process 0)")
    assert not os.path.exists(out)


def test_a_split_smaller_than_one_global_batch_cannot_be_sharded(tmp_path):
    small = make_npz(tmp_path / "small.npz", n=60)
    out = str(tmp_path / "run")
    proc = launch("--data", small, *COMMON, "--batch-size", "32", "--out", out)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2
    assert any(line.startswith("kzoo train: error: ") and "the train split (48 images) cannot be shared by 2 "
               "processes: it holds less than one global batch of 64" in line for line in lines)
    # every process finds it (the first to exit is named); the launcher adds its own line
    assert lines[-1].startswith("kzoo launch: error: process ") and "exited with status 2 (its error is above)" \
        in lines[-1]
    assert not os.path.exists(out)


@pytest.mark.parametrize("args, env, message", [
    (["--num-processes", "2", "--process-id", "2", "--coordinator", "127.0.0.1:1"], JAX,
     "kzoo train: error: --process-id 2 (from flags): expected 0..1 for 2 processes"),
    (["--num-processes", "2", "--process-id", "1", "--coordinator", "127.0.0.1:PORT", "--coordinator-timeout", "2"],
     JAX, "kzoo: error: process 1 of 2 could not join the coordinator at 127.0.0.1:PORT within 2 s"),
    (["--num-processes", "2", "--process-id", "0", "--coordinator", "127.0.0.1:1"], {"KERAS_BACKEND": "tensorflow"},
     "kzoo train: error: several processes train under Keras' JAX backend only (KERAS_BACKEND=jax): "
     "TensorFlow's MultiWorkerMirroredStrategy fails inside Keras 3's model.fit (keras-team/keras#20585"),
])
def test_bad_job_settings_are_one_line_errors_and_write_nothing(tmp_path, args, env, message):
    port = str(free_port())
    out = str(tmp_path / "run")
    start = time.time()
    proc = run_kzoo("train", *[a.replace("PORT", port) for a in args], "--out", out, env=env, timeout=60)
    assert proc.returncode == 2 and time.time() - start < 40
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(message.replace("PORT", port)), lines[-3:]
    assert not os.path.exists(out)


def test_launch_refuses_a_command_that_does_not_train(tmp_path):
    proc = run_kzoo("launch", "--nproc", "2", "--", "eval", "--checkpoint", "x.keras")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("kzoo launch: error: launch runs train or pretrain as one job of several processes, "
                                   "got 'eval': e.g. kzoo launch --nproc 2 -- train --model vit_cifar_tiny")


def test_pretrain_runs_as_two_processes_with_one_writer_and_the_knn_monitor(tmp_path):
    out = str(tmp_path / "simclr")
    proc = run_kzoo("launch", "--nproc", "2", "--grace", "5", "--", "pretrain", "--model", "vit_cifar_tiny",
                    "--image-size", "16", "--batch-size", "8", "--hidden-dim", "32", "--projection-dim", "16",
                    "--epochs", "1", "--steps-per-epoch", "2", "--knn-every", "1", "--knn-limit", "100", "--out", out,
                    env=JAX, check=True)
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert (metrics["processes"], metrics["replicas"]) == (2, 2)
    assert 0.0 <= metrics["knn_top1"] <= 1.0 and os.path.exists(os.path.join(out, "encoder.keras"))
    assert proc.stdout.count("vit_cifar_tiny simclr:") == 1
    assert proc.stderr.count("global batch 16 (8 per replica)") == 1


def test_ctrl_c_reaches_every_process_and_leaves_none_behind(toy, tmp_path):
    out = str(tmp_path / "run")
    command = [sys.executable, "-m", "kzoo.cli", "launch", "--nproc", "2", "--grace", "5", "--", "train", "--data",
               toy, *COMMON, "--epochs", "50", "--batch-size", "8", "--out", out]
    env = {**os.environ, **JAX, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    # As from a terminal: a shell's background job (`cmd &`, and so a CI started that way) runs with
    # SIGINT ignored, which the launcher would inherit and rightly keep ignoring.
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and len(children := _children(proc.pid)) < 2:
        time.sleep(0.1)
    time.sleep(1.0)  # both processes are starting up (importing, joining): Ctrl-C may come at any point
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1] == ("kzoo launch: error: interrupted: stopped every process; rerun the "
                                               "same command to resume")
    assert len(children) == 2 and not any(os.path.exists(f"/proc/{pid}") for pid in children.values())
