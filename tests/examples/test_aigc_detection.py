"""examples/aigc_detection.py end to end on tiny stand-ins: two one-step GANs, a few real images from
an npz, one detector trained for one epoch. Checks where each folder's images come from, the
manifest's reuse, and that the report is the run's own figures."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from example_loader import load_example
from PIL import Image

pytest.importorskip("tensorflow")  # kzoo.train reads the folders with tf.data

from kzoo.generative import to_pixels, train_gan
from kzoo.generative.sampling import load_gan

# reuse_fakes off: the seeded one-step generators below (and the grey-level margins the test reads)
# are the fresh-noise step's; the default step moves them less apart.
TINY_GAN = {"model": "dcgan_32", "width": 2, "latent_dim": 8, "batch_size": 8, "epochs": 1, "steps_per_epoch": 1,
            "g_ema": None, "reuse_fakes": False}




def _jpegs(folder):
    return np.stack([np.asarray(Image.open(os.path.join(folder, f)), np.float32) for f in sorted(os.listdir(folder))])


def test_smoke_run_builds_the_folders_from_the_right_sources_and_reports_the_run(tmp_path):
    rng = np.random.default_rng(0)
    # 8x8 blocks of one colour each: JPEG keeps them to a few levels, so a written image can be matched.
    arrays = {f"x_{s}": rng.integers(0, 255, (n, 4, 4, 3), dtype=np.uint8).repeat(8, 1).repeat(8, 2)
              for s, n in (("train", 24), ("test", 12))}
    arrays.update(y_train=np.zeros(24, np.int64), y_test=np.zeros(12, np.int64))
    real = str(tmp_path / "real.npz")
    np.savez(real, **arrays)
    gans = [train_gan(data=real, out=str(tmp_path / f"gan{seed}"), seed=seed, **TINY_GAN).run_dir for seed in (0, 1)]
    train_gen, test_gen = (os.path.join(run, "last.keras") for run in gans)
    # One step leaves both generators near grey; a steeper last layer makes the held-out one tell apart.
    held = load_gan(test_gen)
    last = [layer for layer in held.generator.layers if layer.weights][-1]
    last.kernel.assign(last.kernel * 50.0)
    held.save(test_gen)
    out = tmp_path / "aigc"
    args = ["--train-generator", train_gen, "--test-generator", test_gen, "--out", str(out), "--real-data", real,
            "--n-train", "16", "--n-test", "8", "--epochs", "1", "--models", "vit_cifar_tiny", "--jpeg-quality", "95"]
    example = load_example("aigc_detection")
    results = example.main(args)

    data = out / "data"
    # Real images: n different ones of the source's own split; generated ones: each folder from its generator.
    for split, n in (("train", 16), ("test", 8)):
        got = _jpegs(data / split / "real")
        source = arrays[f"x_{split}"].astype(np.float32)
        match = [int(np.argmin(np.abs(source - image).mean(axis=(1, 2, 3)))) for image in got]
        assert got.shape == (n, 32, 32, 3) and len(set(match)) == n
        assert max(np.abs(source[i] - image).mean() for i, image in zip(match, got)) < 12  # JPEG's chroma subsampling
    held_out = to_pixels(load_gan(test_gen).generate(8, seed=1))
    trained_on = to_pixels(load_gan(train_gen).generate(8, seed=1))
    test_fakes = _jpegs(data / "test" / "generated")
    near, other = (float(np.abs(test_fakes - np.asarray(g, np.float32)).mean()) for g in (held_out, trained_on))
    assert near < 0.75 * other, (near, other)  # seeded: 1.9 vs 3.0 grey levels when written
    assert len(os.listdir(data / "train" / "generated")) == 16

    # The report is the detector's run: its test figure, its history, a Grad-CAM grid.
    run = out / "runs" / "vit_cifar_tiny" / "seed0"
    metrics = json.loads((run / "metrics.json").read_text())
    (result,) = results
    assert result["held_out_accuracy"] == metrics["top1"] and set(result["per_class"]) == {"generated", "real"}
    assert result["real"] == metrics["per_class_accuracy"]["real"] and result["seed"] == 0
    assert result["epochs"] == 1 and len(result["val_curve"]) == 1
    assert os.path.exists(result["gradcam"]["grid"]) and (out / "val_accuracy.png").exists()
    # The side-by-side figure: a column of test images and one of overlays, a row per explained image.
    assert [e["overlay"] for e in result["gradcam"]["images"]][0].endswith("real_00000_gradcam.png")
    assert Image.open(out / "gradcam.png").size[1] > Image.open(out / "gradcam.png").size[0] > 0
    report = json.loads((out / "results.json").read_text())
    assert report["results"][0]["model"] == "vit_cifar_tiny"
    assert report["summary"][0]["held_out_accuracy"] == metrics["top1"] and report["summary"][0]["seeds"] == 1
    assert f"**{100 * metrics['top1']:.2f}%**" in (out / "results.md").read_text()

    # The same settings reuse the folders; other settings rebuild them.
    stamp = os.path.getmtime(data / "manifest.json")
    parsed = example.argparse.Namespace(**json.loads((out / "results.json").read_text())["args"])
    assert example.build_dataset(parsed) == str(data) and os.path.getmtime(data / "manifest.json") == stamp
    parsed.n_test = 4
    example.build_dataset(parsed)
    assert len(os.listdir(data / "test" / "real")) == 4


def test_summary_is_the_mean_and_sample_std_over_each_detectors_seeds():
    example = load_example("aigc_detection")
    figures = dict.fromkeys(example.FIGURES, 0.0)
    runs = [{**figures, "model": model, "label": model, "params": 1, "held_out_accuracy": acc, "gap": gap}
            for model, acc, gap in (("a", 0.6, 0.01), ("b", 0.9, 0.0), ("a", 0.8, 0.03), ("a", 0.7, None))]
    a, b = example.summarize(runs)
    assert (a["model"], a["seeds"], b["seeds"]) == ("a", 3, 1)
    assert a["held_out_accuracy"] == pytest.approx(0.7) and a["held_out_accuracy_std"] == pytest.approx(0.1)
    assert a["gap"] == pytest.approx(0.02)  # a run without the figure is left out, not counted as 0
    assert b["held_out_accuracy"] == 0.9 and b["held_out_accuracy_std"] == 0.0
