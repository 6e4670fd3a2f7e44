"""CLIP weights from transformers' and OpenCLIP's layouts equal the torch models (fixtures made by
tests/fixtures/make_clip_fixtures.py), and the BPE tokenizer gives the reference tokenizers' ids."""

import json
import shutil

import huggingface_hub.constants  # noqa: F401  now, before a test sets HF_HUB_OFFLINE: it reads it once
import keras
import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.vlm import CLIPTokenizer, load_clip, save_clip
from kzoo.vlm.clip import parts
from tests.vlm.conftest import FIXTURES, reference

TOL = 1e-4


def _embeddings(checkpoint, ref):
    image_encoder, text_encoder, scale = parts(checkpoint.model)
    images = np.asarray(image_encoder.predict(ref["images"].astype("float32"), verbose=0))
    texts = np.asarray(text_encoder.predict(ref["input_ids"], verbose=0))
    return images, texts, keras.ops.convert_to_numpy(scale([images, texts]))


def test_embeddings_and_logits_equal_the_torch_model(clip):
    layout, checkpoint, ref = clip
    images, texts, logits = _embeddings(checkpoint, ref)
    np.testing.assert_allclose(images, ref["image_embeds"], atol=TOL)
    np.testing.assert_allclose(texts, ref["text_embeds"], atol=TOL)
    np.testing.assert_allclose(logits, ref["logits_per_image"], atol=TOL)
    # The whole model ([images, ids] -> logits) is the same computation.
    whole = keras.ops.convert_to_numpy(checkpoint.model([ref["images"].astype("float32"), ref["input_ids"]]))
    np.testing.assert_allclose(whole, ref["logits_per_image"], atol=TOL)


def test_tokenizer_ids_equal_the_reference_tokenizer(clip):
    layout, checkpoint, ref = clip
    np.testing.assert_array_equal(checkpoint.tokenizer(list(ref["texts"])), ref["input_ids"])
    # Strings on which transformers and OpenCLIP disagree: kzoo follows each layout's own tokenizer
    # for HTML entities and (transformers) a literal <|endoftext|>; OpenCLIP's ftfy repairs are not done.
    agreed = {"transformers": 4, "open_clip": 1}[layout]
    got = checkpoint.tokenizer(list(ref["disputed_texts"]))
    same = [bool((g == r).all()) for g, r in zip(got, ref["disputed_input_ids"])]
    assert sum(same) == agreed and same[0], list(zip(ref["disputed_texts"], same))


def test_tokenizer_json_alone_gives_the_same_ids(tmp_path):
    shutil.copy(FIXTURES / "transformers" / "tokenizer.json", tmp_path / "tokenizer.json")
    ref = reference("transformers")
    np.testing.assert_array_equal(CLIPTokenizer.from_directory(str(tmp_path))(list(ref["texts"])), ref["input_ids"])


def test_long_text_is_cut_and_still_ends_with_end_of_text():
    tok = CLIPTokenizer.from_directory(str(FIXTURES / "transformers"))
    ids = tok(["x " * 200, ""])
    assert ids.shape == (2, 77) and ids[0, -1] == tok.end_id and ids[0, 0] == tok.start_id
    assert ids[1, :2].tolist() == [tok.start_id, tok.end_id] and (ids[1, 2:] == tok.pad_id).all()


def test_kzoo_folder_round_trip_keeps_the_model_and_tokenizer(clip, tmp_path):
    layout, checkpoint, ref = clip
    again = load_clip(save_clip(checkpoint, str(tmp_path / "kzoo_clip")))
    assert again.layout == "kzoo" and again.config == checkpoint.config
    np.testing.assert_array_equal(again.tokenizer(list(ref["texts"])), ref["input_ids"])
    for mine, theirs in zip(_embeddings(again, ref), _embeddings(checkpoint, ref)):
        np.testing.assert_allclose(mine, theirs, atol=1e-6)


def _copy(layout, tmp_path, drop=()):
    target = tmp_path / layout
    shutil.copytree(FIXTURES / layout, target)
    for name in drop:
        (target / name).unlink()
    return target


@pytest.mark.parametrize("layout", ["transformers", "open_clip"])
def test_a_folder_without_tokenizer_files_is_refused(layout, tmp_path):
    target = _copy(layout, tmp_path, drop=("vocab.json", "merges.txt", "tokenizer.json"))
    with pytest.raises(KzooError, match="no CLIP tokenizer files"):
        load_clip(str(target))


def test_non_clip_checkpoints_are_refused(tmp_path):
    vit = tmp_path / "vit"
    vit.mkdir()
    (vit / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(KzooError, match="model_type 'vit'; expected a CLIP"):
        load_clip(str(vit))
    with pytest.raises(KzooError, match="not a CLIP checkpoint folder"):
        load_clip(str(tmp_path))
    pickled = _copy("open_clip", tmp_path, drop=("open_clip_model.safetensors",))
    (pickled / "open_clip_pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(KzooError, match="pickle"):
        load_clip(str(pickled))


def test_weights_of_another_size_are_refused_before_anything_is_assigned(tmp_path):
    target = _copy("open_clip", tmp_path)
    cfg = json.loads((target / "open_clip_config.json").read_text())
    cfg["model_cfg"]["vision_cfg"]["layers"] = 3
    (target / "open_clip_config.json").write_text(json.dumps(cfg))
    with pytest.raises(KzooError, match="resblocks.2"):
        load_clip(str(target))
    cfg["model_cfg"]["vision_cfg"].update(layers=2, attentional_pool=True)
    (target / "open_clip_config.json").write_text(json.dumps(cfg))
    with pytest.raises(KzooError, match="attentional_pool"):
        load_clip(str(target))


def _fill_hf_cache(cache, repo: str, layout: str, drop=()):
    """A Hugging Face cache holding the fixture's files as `repo` (what `hf download` leaves)."""
    revision = "0" * 40
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(revision)
    shutil.copytree(FIXTURES / layout, root / "snapshots" / revision)
    for name in drop:
        (root / "snapshots" / revision / name).unlink()


@pytest.mark.parametrize("layout", ["transformers", "open_clip"])
def test_hub_ids_load_from_the_hugging_face_cache_offline(layout, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fill_hf_cache(tmp_path / "hf", f"org/{layout}-clip", layout)
    checkpoint = load_clip(f"hf-hub:org/{layout}-clip")
    assert checkpoint.layout == layout
    ref = reference(layout)
    np.testing.assert_allclose(_embeddings(checkpoint, ref)[2], ref["logits_per_image"], atol=TOL)
    _fill_hf_cache(tmp_path / "hf", "org/other", layout, drop=("vocab.json", "merges.txt", "tokenizer.json"))
    with pytest.raises(KzooError, match="no CLIP tokenizer files"):
        load_clip("hf-hub:org/other")
    with pytest.raises(KzooError, match="HF_HUB_OFFLINE"):
        load_clip("hf-hub:org/missing")
