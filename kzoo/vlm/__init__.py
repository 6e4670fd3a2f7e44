"""Vision-language models: CLIP with OpenAI / OpenCLIP weights, zero-shot classifiers, CoOp prompt learning.

`load_clip` reads a CLIP folder in transformers' or OpenCLIP's layout (or `hf-hub:owner/name`);
`zero_shot_classifier` turns it and a list of class names into an image classifier; `build_coop`
learns prompt context for a few labelled images per class (`kzoo train --method coop`).

Example:
    >>> from kzoo.vlm import load_clip, zero_shot_classifier
    >>> clip = load_clip("tests/fixtures/clip/open_clip")  # doctest: +SKIP
    >>> model = zero_shot_classifier(clip, ["cat", "dog"], templates="simple")  # doctest: +SKIP
"""

from kzoo._lazy import lazy_getattr

# Imported on first use: importing kzoo.vlm (the CLI does) starts neither Keras nor TensorFlow.
_EXPORTS = {
    **dict.fromkeys(["CLIPConfig", "build_clip"], "kzoo.vlm.clip"),
    **dict.fromkeys(["CLIPCheckpoint", "load_clip", "save_clip"], "kzoo.vlm.checkpoints"),
    "CLIPTokenizer": "kzoo.vlm.tokenizer",
    **dict.fromkeys(["zero_shot_classifier", "evaluate_zero_shot", "TEMPLATE_SETS"], "kzoo.vlm.zeroshot"),
    **dict.fromkeys(["build_coop", "coop_classifier", "PromptLearner", "CoOpHead"], "kzoo.vlm.coop"),
    "CoOpConfig": "kzoo.vlm.config",
    "train_coop": "kzoo.vlm.training",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
