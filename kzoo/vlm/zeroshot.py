"""Zero-shot classifiers: CLIP's image encoder + one fixed text embedding per class.

The class embeddings are computed once, when the classifier is made (prompt ensembling as in
CLIP: each template's text feature normalised, averaged over templates, normalised again), and
stored as the kernel of a bias-free `Dense` named `head`. The result is an ordinary kzoo
classifier (images -> logits): `model.fit`, `kzoo eval`, `kzoo predict`, export and Grad-CAM take it
like any other, and it runs no text encoder at inference.
"""

from __future__ import annotations

import os
from typing import Sequence

import keras
import numpy as np

from kzoo.errors import KzooError

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "simple": ("a photo of a {}.",),
    # The seven ImageNet prompts OpenAI's CLIP notebook selected from its 80 for ensembling.
    "imagenet": ("itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
                 "a {} in a video game.", "art of the {}.", "a photo of the small {}."),
    # The five ImageNet prompts above that are not CIFAR prompts: a zero-shot test of a CLIP trained on
    # the "cifar" captions (kzoo train --method clip) with wordings it never saw.
    "imagenet_unseen": ("itap of a {}.", "a origami {}.", "a photo of the large {}.", "a {} in a video game.",
                        "art of the {}."),
    # OpenAI's CIFAR-10/100 prompts.
    "cifar": ("a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
              "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
              "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.", "a photo of the {}.",
              "a blurry photo of the {}.", "a black and white photo of the {}.", "a low contrast photo of the {}.",
              "a high contrast photo of the {}.", "a bad photo of the {}.", "a good photo of the {}.",
              "a photo of the small {}.", "a photo of the big {}."),
}


def resolve_templates(templates: str | Sequence[str] | None, where: str = "--templates") -> tuple[str, ...]:
    """A template set by name (`simple`, `imagenet`, `cifar`), a text file (one per line), or a list.

    Example:
        >>> resolve_templates("simple")
        ('a photo of a {}.',)
    """
    if templates is None:
        templates = "imagenet"
    if isinstance(templates, str):
        if templates in TEMPLATE_SETS:
            return TEMPLATE_SETS[templates]
        if not os.path.isfile(templates):
            raise KzooError(f"{where} {templates}: neither a template set ({', '.join(TEMPLATE_SETS)}) nor a file")
        where = f"{where} {templates}"
        with open(templates, encoding="utf-8") as f:
            templates = [line.rstrip("\n") for line in f if line.strip()]
    templates = tuple(templates)
    if not templates:
        raise KzooError(f"{where}: no templates; expected one or more lines like 'a photo of a {{}}.'")
    for i, t in enumerate(templates, 1):
        if t.count("{}") != 1:
            raise KzooError(f"{where}: template {i} {t!r} has {t.count('{}')} '{{}}' slots; expected exactly one, "
                            "where the class name goes (e.g. 'a photo of a {}.')")
    return templates


def read_class_names(path: str, expected: int | None = None, source: str = "the data") -> list[str]:
    """Class names from a text file, one per line (`_` read as a space), checked against `expected`."""
    if not os.path.isfile(path):
        raise KzooError(f"--classes {path}: no such file; expected a text file with one class name per line")
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if expected is not None and len(names) != expected:
        raise KzooError(f"--classes {path}: {len(names)} class names, but {source} has {expected} classes; "
                        "give one name per class, in the data's class order")
    return names


def prompt_name(name: str) -> str:
    """How a class name reads in a prompt: folder names such as `aircraft_carrier` get spaces."""
    return name.replace("_", " ").strip()


def class_embeddings(clip, class_names: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """`(C, E)` unit-norm class embeddings: the normalised mean of each class's normalised template features."""
    from kzoo.vlm.clip import normalize

    texts = [t.format(prompt_name(name)) for name in class_names for t in templates]
    features = keras.ops.convert_to_numpy(normalize(clip.encode_text(texts)))
    per_class = features.reshape(len(class_names), len(templates), -1).mean(axis=1)
    return keras.ops.convert_to_numpy(normalize(per_class))


def zero_shot_classifier(clip, class_names: Sequence[str], templates: str | Sequence[str] | None = None,
                         name: str = "zero_shot") -> keras.Model:
    """An image classifier from a CLIP and class names, with no training.

    Args:
        clip: a `kzoo.vlm.CLIPCheckpoint` (from `load_clip`).
        class_names: one name per class, in label order.
        templates: a template set name, a file, or strings with one `{}` slot each.

    Returns:
        A keras.Model: [0, 255] images -> `(B, C)` logits (CLIP's scaled cosine similarities).

    Example:
        >>> clip = kzoo.vlm.load_clip("tests/fixtures/clip/transformers")  # doctest: +SKIP
        >>> model = zero_shot_classifier(clip, ["cat", "dog"], "simple")  # doctest: +SKIP
        >>> model.output_shape  # doctest: +SKIP
        (None, 2)
    """
    from kzoo.vlm.clip import parts

    if not class_names:
        raise KzooError("zero-shot: no class names given")
    templates = resolve_templates(templates)
    embeddings = class_embeddings(clip, class_names, templates)
    image_encoder, _, scale = parts(clip.model)
    return classifier_from_embeddings(image_encoder, embeddings, float(keras.ops.convert_to_numpy(scale.scale())),
                                      name)


def classifier_from_embeddings(image_encoder: keras.Model, embeddings: np.ndarray, scale: float,
                               name: str) -> keras.Model:
    """images -> `scale * normalize(image feature) @ embeddings.T`, with the text side frozen into `head`."""
    features = image_encoder(image_encoder.input)
    x = keras.layers.UnitNormalization(axis=-1, name="pool")(features)
    head = keras.layers.Dense(len(embeddings), use_bias=False, name="head", dtype="float32", trainable=False)
    logits = head(x)
    head.kernel.assign((scale * np.asarray(embeddings, "float32")).T)
    return keras.Model(image_encoder.input, logits, name=name)


def evaluate_zero_shot(clip_source: str, data: str | None = None, split: str = "test", *,
                       classes: str | None = None, templates: str | Sequence[str] | None = None,
                       out: str = "runs/zeroshot", batch_size: int = 128, limit: int | None = None,
                       data_dir: str | None = None) -> dict:
    """Zero-shot top-1/top-5 of a CLIP on a data split; writes eval-zeroshot.json, confusion-zeroshot.png,
    predictions.csv (per image: label, top-5 classes and probabilities) and zeroshot.keras (the classifier).

    Example:
        >>> evaluate_zero_shot("clip-dir", "cifar10-jpg.tar.gz", templates="cifar")["top1"]  # doctest: +SKIP
    """
    import csv
    import json

    from kzoo import data as kdata
    from kzoo.training.evaluation import classification_report, predict_logits
    from kzoo.training.plots import plot_confusion
    from kzoo.vlm.checkpoints import load_clip
    from kzoo.weights.preprocessing import get_preprocessing

    templates = resolve_templates(templates)  # bad templates fail before any model is loaded
    clip = load_clip(clip_source)
    size = (clip.config.image_size,) * 2
    bundle = kdata.load(data, split, image_size=size, batch_size=batch_size, limit=limit, data_dir=data_dir,
                        preprocessing=get_preprocessing(clip.image_encoder))
    names = read_class_names(classes, bundle.num_classes, bundle.source) if classes else bundle.class_names
    model = zero_shot_classifier(clip, names, templates)
    logits, labels = predict_logits(model, bundle.dataset)
    report = classification_report(logits, labels, bundle.class_names)
    report.update(clip=clip_source, layout=clip.layout, data=bundle.source, split=split,
                  templates=list(templates), prompt_class_names=list(names))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "eval-zeroshot.json"), "w") as f:
        json.dump(report, f, indent=2)
    plot_confusion(np.asarray(report["confusion"]), bundle.class_names, os.path.join(out, "confusion-zeroshot.png"),
                   title=f"zero-shot: top-1 {report['top1']:.1%}")
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
    top = np.argsort(-probs, axis=-1)[:, :5]
    with open(os.path.join(out, "predictions.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        k = top.shape[1]
        writer.writerow(["index", "file", "label"] + [c for i in range(1, k + 1) for c in (f"top{i}", f"prob{i}")])
        files = bundle.files or [""] * len(labels)
        for i, (label, row) in enumerate(zip(labels, top)):
            writer.writerow([i, os.path.basename(files[i]) if files[i] else "", bundle.class_names[int(label)]]
                            + [v for j in row for v in (bundle.class_names[j], f"{probs[i, j]:.6f}")])
    with open(os.path.join(out, "class_names.json"), "w") as f:
        json.dump(list(bundle.class_names), f)
    model.save(os.path.join(out, "zeroshot.keras"))
    return report
