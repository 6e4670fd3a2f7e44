"""AugMix in `kzoo train`: the preset in the pipeline, and the Jensen-Shannon loss in model.fit."""

import json

import keras
import pytest

import kzoo
from kzoo.errors import KzooError
from kzoo.training import rundir

from training_helpers import make_npz

# Without XLA: compiling the three-view JSD step cost more than the two epochs it trains.
TINY = dict(model="vit_cifar_tiny", image_size=[16, 16], batch_size=16, val_split=0.25, lr=2e-3, epochs=2,
            jit_compile=False)


def test_augmix_jsd_trains_the_model_and_saves_it_bare(tmp_path):
    out = str(tmp_path / "run")
    result = kzoo.train(data=make_npz(tmp_path / "toy.npz", n=64), out=out, augment="basic", augmix_jsd=12.0, **TINY)
    history = rundir.read_history(out)
    # The consistency term is trained and logged; the checkpoint is the plain model, not the wrapper.
    assert all(row["jsd"] > 0 for row in history)  # the loss terms themselves: tests/augment/test_augmix.py
    best = keras.saving.load_model(rundir.run_file(out, "best"), safe_mode=True)
    assert best.name == "vit_cifar_tiny" and best.input_shape == (None, 16, 16, 3)
    assert json.load(open(rundir.run_file(out, "config")))["augmix_jsd"] == 12.0
    assert 0 <= result.metrics["top1"] <= 1


@pytest.mark.parametrize("augment, augment_on", [("augmix", "pipeline"), ("basic", "device")])
def test_augmix_jsd_refuses_a_second_augmix_or_device_placement(tmp_path, augment, augment_on):
    with pytest.raises(KzooError, match="--augmix-jsd makes its own AugMix views"):
        kzoo.train(data=make_npz(tmp_path / "toy.npz", n=64), out=str(tmp_path / "run"), augment=augment,
                   augment_on=augment_on, augmix_jsd=12.0, **TINY)
    assert not (tmp_path / "run").exists()
