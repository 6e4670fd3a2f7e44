"""Zero-shot classifiers and CoOp on the fixture CLIPs: the class embeddings are CLIP's own text
features, CoOp's assembled prompts are the hand-written prompt when the context starts from its
words, only the context trains, and the folded classifier equals the trained model."""

import keras
import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.vlm import build_coop, coop_classifier, zero_shot_classifier
from kzoo.vlm.clip import normalize
from kzoo.vlm.coop import build_prompts
from kzoo.vlm.zeroshot import resolve_templates

NAMES = ["cat", "dog", "sports car"]


def _images(n=6, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 32, 32, 3)).astype("float32")


def _manual_logits(clip, images, texts_per_class):
    """CLIP's zero-shot recipe written out: normalised text features averaged per class."""
    image = keras.ops.convert_to_numpy(normalize(clip.image_encoder.predict(images, verbose=0)))
    classes = []
    for texts in texts_per_class:
        t = keras.ops.convert_to_numpy(normalize(clip.encode_text(texts)))
        classes.append(keras.ops.convert_to_numpy(normalize(t.mean(axis=0))))
    scale = float(keras.ops.convert_to_numpy(clip.model.get_layer("logit_scale").scale()))
    return scale * image @ np.stack(classes).T


def test_zero_shot_classifier_is_clips_prompt_ensemble(clip):
    _, checkpoint, _ = clip
    templates = ["a photo of a {}.", "art of the {}."]
    model = zero_shot_classifier(checkpoint, NAMES, templates)
    images = _images()
    expected = _manual_logits(checkpoint, images, [[t.format(n) for t in templates] for n in NAMES])
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-4)
    assert model.get_layer("head").trainable_weights == []  # the text side is frozen into the head


@pytest.mark.parametrize("position,template", [("end", "a photo of a {}."), ("middle", "a photo {} of a."),
                                               ("front", "{} a photo of a.")])
def test_coop_started_from_a_phrase_is_the_hand_written_prompt(clip, position, template):
    _, checkpoint, _ = clip
    images = _images()
    expected = _manual_logits(checkpoint, images, [[template.format(n)] for n in NAMES])
    for csc in (False, True):
        model = build_coop(checkpoint, NAMES, position=position, class_specific=csc, init="a photo of a")
        np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-4)


def test_prompt_layout_puts_the_context_where_asked(clip):
    _, checkpoint, _ = clip
    tok = checkpoint.tokenizer
    name = tok.encode("sports car")
    for position, slots in (("end", [0, 1, 2, 3] + [-1] * len(name)), ("middle", [0, 1] + [-1] * len(name) + [2, 3]),
                            ("front", [-1] * len(name) + [0, 1, 2, 3])):
        p = build_prompts(tok, ["sports car"], num_context=4, position=position)
        assert p.slots[0, 1:1 + 4 + len(name)].tolist() == slots
        assert p.ids[0, 0] == tok.start_id and p.ids[0, p.end_index[0]] == tok.end_id
        assert p.end_index[0] == 1 + 4 + len(name) + 1  # [SOS] ctx name "." [EOS]
    with pytest.raises(KzooError, match="smaller --context"):
        build_prompts(tok, ["cat"], num_context=80)
    with pytest.raises(KzooError, match="--position"):
        build_prompts(tok, ["cat"], num_context=4, position="side")


def test_coop_trains_the_context_only_and_folds_into_a_plain_classifier(clip, tmp_path):
    _, checkpoint, _ = clip
    images = _images(12, seed=1)
    labels = keras.utils.to_categorical(np.arange(12) % 3, 3)
    model = build_coop(checkpoint, NAMES, num_context=4, class_specific=True, seed=0)
    assert [w.path for w in model.trainable_weights] == ["coop/prompt_learner/context"]
    frozen = [np.array(w) for w in model.non_trainable_weights]
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    losses = model.fit(images, labels, epochs=15, batch_size=12, verbose=0).history["loss"]
    assert losses[-1] < 0.8 * losses[0]
    for before, after in zip(frozen, model.non_trainable_weights):
        np.testing.assert_array_equal(before, np.array(after))
    fast = coop_classifier(model)
    assert not any("text_transformer" in layer.name for layer in fast.layers)
    np.testing.assert_allclose(fast.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-4)
    # A saved CoOp model reloads with the same frozen parts (a resumed run trains the context only).
    model.save(tmp_path / "coop.keras")
    again = keras.saving.load_model(tmp_path / "coop.keras", safe_mode=True)
    assert [w.path for w in again.trainable_weights] == ["coop/prompt_learner/context"]
    np.testing.assert_allclose(again.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)


def test_templates_need_exactly_one_slot(tmp_path):
    assert resolve_templates("cifar")[0] == "a photo of a {}."
    with pytest.raises(KzooError, match="0 '{}' slots"):
        resolve_templates(["a photo of a cat"])
    path = tmp_path / "t.txt"
    path.write_text("a {} of {}\n")
    with pytest.raises(KzooError, match=f"{path}: template 1"):
        resolve_templates(str(path))


def test_class_aware_contrastive_loss():
    from kzoo.vlm.contrastive import ClassAwareContrastiveLoss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 4)).astype("float32")
    loss = ClassAwareContrastiveLoss()

    def ce(z, targets):
        z = z - z.max(axis=1, keepdims=True)
        return -(targets * (z - np.log(np.exp(z).sum(axis=1, keepdims=True)))).sum(axis=1).mean()

    # Distinct classes: CLIP's symmetric loss with the diagonal as the positives.
    eye = np.eye(4, dtype="float32")
    assert float(loss(eye, logits)) == pytest.approx(0.5 * (ce(logits, eye) + ce(logits.T, eye)), rel=1e-5)
    # Classes [0, 0, 1, 2]: rows 0 and 1 spread their target over both captions of class 0.
    y = np.eye(3, dtype="float32")[[0, 0, 1, 2]]
    targets = np.array([[.5, .5, 0, 0], [.5, .5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "float32")
    assert float(loss(y, logits)) == pytest.approx(0.5 * (ce(logits, targets) + ce(logits.T, targets)), rel=1e-5)
