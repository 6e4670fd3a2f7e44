"""`kzoo gan train` / `kzoo gan sample` (kzoo.generative.train_gan, sample_images): the run directory,
the logged FID/KID (recomputed here), sample grids and GIF, resume, the sampled folder, and the
one-line refusals. Runs under both backends."""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

import kzoo
from kzoo.cli import main
from kzoo.generative import FeatureExtractor, fid, kid, to_pixels, train_gan
from kzoo.generative.callbacks import uint8_pixels
from kzoo.generative.config import GAN_MODEL_LOSSES, GanConfig
from kzoo.generative.sampling import MANIFEST, load_gan
from kzoo.training import callbacks as run_callbacks
from kzoo.training import rundir
from tests.tiny_models import tiny_model
from tests.training.training_helpers import Crash, CrashAt, make_npz

# Tiny networks and batches: every run compiles the same shapes (under JAX, one compile per shape).
TINY = dict(model="dcgan_32", width=2, latent_dim=8, batch_size=8, fid_images=16, g_ema=0.9)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One 2-epoch run with FID/KID every epoch, shared by the tests that read it."""
    root = tmp_path_factory.mktemp("gan")
    data = make_npz(root / "toy.npz", n=40, size=32)
    extractor = str(root / "extractor.keras")
    tiny_model("vit", num_classes=3).save(extractor)
    result = train_gan(data=data, epochs=2, steps_per_epoch=3, fid_every=1, fid_extractor=extractor,
                       out=str(root / "run"), **TINY)
    return data, extractor, result


def test_run_directory_holds_the_gan_samples_and_scores(trained):
    data, extractor_path, result = trained
    out = result.run_dir
    for name in ("last.keras", "best.keras", "history.csv", "curves.png", "metrics.json", "interpolation.png",
                 "samples.gif", "samples/epoch_0001.png", "samples/epoch_0002.png"):
        assert os.path.exists(os.path.join(out, name)), name
    history = rundir.read_history(out)
    assert [int(r["epoch"]) for r in history] == [0, 1]
    for row in history:
        assert {"d_loss", "g_loss", "d_real", "d_fake", "fid", "kid", "kid_std"} <= set(row)
        assert row["lr_g"] == pytest.approx(2e-4) and row["lr_d"] == pytest.approx(2e-4)
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["epochs_completed"] == 2 and metrics["gan_loss"] == "non_saturating"
    assert metrics["fid"] == pytest.approx(history[-1]["fid"]) and metrics["fid_extractor"].startswith("fid_kzoo_")
    assert metrics["best_fid"] == pytest.approx(min(r["fid"] for r in history))

    # The logged scores are those of last.keras's EMA generator, recomputed here from scratch.
    gan = load_gan(os.path.join(out, "last.keras"))
    # The toy set has no test split: the real images are a seeded subset of the training split.
    real_split = kzoo.data.load(data, "train", image_size=(32, 32), batch_size=256, limit=16, shuffle=False)
    real = np.concatenate([images for images, _ in real_split.dataset.as_numpy_iterator()])
    extractor = FeatureExtractor.from_classifier(extractor_path)
    fakes = to_pixels(gan.generate(16, seed=0))
    assert fid(real, fakes, extractor) == pytest.approx(metrics["fid"], rel=1e-3)
    assert kid(real, fakes, extractor)[0] == pytest.approx(metrics["kid"], rel=1e-3, abs=1e-6)
    # best.keras is the epoch with the lowest FID.
    best = load_gan(os.path.join(out, "best.keras"))
    best_fid = fid(real, to_pixels(best.generate(16, seed=0)), extractor)
    assert best_fid == pytest.approx(metrics["best_fid"], rel=1e-3)

    # The grids show the same fixed noise each epoch (so they differ only by training), 8x8 at 2x scale.
    grids = [np.asarray(Image.open(os.path.join(out, "samples", f"epoch_000{e}.png"))) for e in (1, 2)]
    assert grids[0].shape == ((8 * 33 + 1) * 2, (8 * 33 + 1) * 2, 3) and not np.array_equal(*grids)
    noise = keras.ops.convert_to_numpy(keras.random.normal((64, 8), seed=1))
    np.testing.assert_array_equal(grids[1][2:66, 2:66], np.kron(uint8_pixels(gan.sample(noise[:1]))[0],
                                                                 np.ones((2, 2, 1), "uint8")))
    assert Image.open(os.path.join(out, "samples.gif")).n_frames == 2


def test_sample_writes_the_generators_images_and_guards_the_folder(trained, tmp_path, capsys):
    _, _, result = trained
    checkpoint = os.path.join(result.run_dir, "last.keras")
    out = tmp_path / "fakes"
    assert main(["gan", "sample", "--checkpoint", checkpoint, "--n", "5", "--out", str(out), "--seed", "3"]) == 0
    assert "wrote 5 images (EMA generator" in capsys.readouterr().out
    files = sorted(os.listdir(out))
    assert files == sorted([MANIFEST] + [f"sample_00000{i}.png" for i in range(5)])
    gan = load_gan(checkpoint)
    expected = uint8_pixels(gan.sample(keras.random.normal((5, 8), seed=3)))
    np.testing.assert_array_equal(np.asarray(Image.open(out / "sample_000004.png")), expected[4])
    assert json.load(open(out / MANIFEST))["ema"] is True

    # A second run needs --overwrite and leaves the folder as it was until then.
    before = (out / "sample_000000.png").read_bytes()
    assert main(["gan", "sample", "--checkpoint", checkpoint, "--n", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0] and (out / "sample_000000.png").read_bytes() == before
    assert main(["gan", "sample", "--checkpoint", checkpoint, "--n", "2", "--out", str(out), "--overwrite"]) == 0
    assert sorted(os.listdir(out)) == sorted([MANIFEST, "sample_000000.png", "sample_000001.png"])
    assert not [p for p in os.listdir(tmp_path) if ".partial" in p or ".old" in p]
    # --overwrite never replaces a folder of someone else's files.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("keep me")
    assert main(["gan", "sample", "--checkpoint", checkpoint, "--n", "2", "--out", str(tmp_path / "mine"),
                 "--overwrite"]) == 2
    assert "did not write" in capsys.readouterr().err and (tmp_path / "mine" / "thesis.txt").exists()


def test_checkpoint_kinds_are_checked_both_ways(trained, tmp_path, capsys):
    _, extractor, result = trained
    assert main(["gan", "sample", "--checkpoint", extractor, "--n", "2", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a GAN" in err[0] and not (tmp_path / "x").exists()
    gan_checkpoint = os.path.join(result.run_dir, "last.keras")
    assert main(["eval", "--checkpoint", gan_checkpoint, "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a GAN checkpoint" in err[0] and "kzoo gan sample" in err[0]


def test_sampling_more_than_the_disk_holds_is_refused_before_writing(trained, tmp_path, capsys):
    checkpoint = os.path.join(trained[2].run_dir, "last.keras")
    out = tmp_path / "huge"
    assert main(["gan", "sample", "--checkpoint", checkpoint, "--n", str(10 ** 13), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GB are free: lower --n" in err[0] and not out.exists()
    assert not list(tmp_path.iterdir())


def test_a_killed_gan_run_resumes_with_the_same_number_of_steps(tmp_path, monkeypatch):
    data = make_npz(tmp_path / "toy.npz", n=40, size=32)  # 5 steps of 8 per epoch
    cfg = dict(TINY, data=data, epochs=2, backup_steps=2, sample_every=0, out=str(tmp_path / "run"))
    standard = run_callbacks.standard
    monkeypatch.setattr(run_callbacks, "standard", lambda *a: standard(*a) + [CrashAt(2)])
    with pytest.raises(Crash):
        train_gan(**cfg)
    assert run_callbacks.backup_position(cfg["out"]) == (0, 2)
    monkeypatch.setattr(run_callbacks, "standard", standard)
    result = train_gan(**cfg)
    gan = load_gan(rundir.run_file(cfg["out"], "last"))
    assert int(keras.ops.convert_to_numpy(gan.optimizer.iterations)) == 2 * 5
    assert int(keras.ops.convert_to_numpy(gan.g_optimizer.iterations)) == 2 * 5
    assert result.metrics["epochs_completed"] == 2
    assert GanConfig.from_json(rundir.run_file(cfg["out"], "config")).lr_g == 2e-4


def test_a_time_budget_sets_both_rates_from_their_schedules():
    from kzoo.generative import GAN, build_gan_networks
    from kzoo.training.schedules import make_schedule

    gan = GAN(*build_gan_networks("dcgan_32", latent_dim=8, width=2), latent_dim=8)
    gan.compile(g_optimizer=keras.optimizers.Adam(0.004), d_optimizer=keras.optimizers.Adam(0.001))
    schedules = {key: make_schedule("cosine", rate, 1, 100, 0, [], 0.1) for key, rate in
                 (("lr_g", 0.004), ("lr_d", 0.001))}
    budget = run_callbacks.TimeBudget(1.0, schedules, total_steps=100, spent_seconds=30.0)
    budget.set_model(gan)
    budget.on_train_begin()  # half of the minute is spent: the rates are at the cosine's midpoint
    rates = {k: float(keras.ops.convert_to_numpy(o.learning_rate)) for k, o in gan.optimizers_by_name().items()}
    assert rates["g"] == pytest.approx(0.002, rel=0.02) and rates["d"] == pytest.approx(0.0005, rel=0.02)


@pytest.mark.parametrize("args, message", [
    (["--lr-g", "0"], "--lr-g must be positive, got 0.0"),
    (["--lr-d", "-1"], "--lr-d must be positive, got -1.0"),
    (["--model", "resnet18_cifar"], "--model 'resnet18_cifar' is not a GAN architecture"),
    (["--fid-every", "2"], "--fid-every needs --fid-extractor"),
    (["--gan-loss", "wasserstein"], "--gan-loss 'wasserstein' is not supported"),
    (["--beta-1", "1.5"], "--beta-1 must be in [0, 1)"),
])
def test_bad_gan_flags_are_one_line_and_write_nothing(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["gan", "train", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_a_gan_checkpoint_as_fid_extractor_is_refused(trained, tmp_path, capsys):
    data, _, result = trained
    out = tmp_path / "run"
    assert main(["gan", "train", "--data", data, "--fid-every", "1", "--fid-extractor",
                 os.path.join(result.run_dir, "last.keras"), "--out", str(out), "--width", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a GAN checkpoint" in err[0]
    assert not out.exists()


def test_the_config_knows_every_registered_architecture():
    from kzoo.generative import GAN_MODELS

    assert set(GAN_MODEL_LOSSES) == set(GAN_MODELS)


def test_only_an_unchanged_fid_kzoo_c10_run_gives_scores_that_name(tmp_path):
    from kzoo.generative.training import CIFAR10_CLASSES, extractor_for
    from kzoo.training.recipes import expand_recipe

    run = tmp_path / "fid_c10"
    run.mkdir()
    tiny_model("vit", num_classes=10).save(str(run / "best.keras"))
    config = dict(expand_recipe("fid_kzoo_c10", {}), data="cifar10-jpg.tar.gz", out=str(run))
    (run / "class_names.json").write_text(json.dumps(CIFAR10_CLASSES))
    (run / "config.json").write_text(json.dumps(config))
    assert extractor_for(str(run / "best.keras")).name == "fid_kzoo_c10"
    (run / "config.json").write_text(json.dumps(dict(config, epochs=1)))  # a shortened run is another network
    assert extractor_for(str(run / "best.keras")).name.startswith("fid_kzoo_vit")
    (run / "config.json").write_text(json.dumps(config))
    (run / "class_names.json").write_text(json.dumps(["cat", "dog"] * 5))
    assert extractor_for(str(run / "best.keras")).name != "fid_kzoo_c10"
