"""CLIP's byte-level BPE tokenizer, read from the `vocab.json` + `merges.txt` next to a checkpoint.

Pure Python (no TensorFlow, no `tokenizers`), so zero-shot and CoOp run under JAX alone. The text
is cleaned as the reference tokenizers do (NFC, collapsed whitespace, lower case; OpenCLIP also
unescapes HTML entities), split with CLIP's pattern, and each piece is merged by rank. The ids
equal transformers' `CLIPTokenizer` and OpenCLIP's `SimpleTokenizer` on the fixture strings
(tests/vlm/test_tokenizer.py).
"""

from __future__ import annotations

import functools
import html
import json
import os
import unicodedata
from typing import Iterable, Sequence

import numpy as np

from kzoo.errors import KzooError

START, END = "<|startoftext|>", "<|endoftext|>"
# CLIP's pre-tokenizer: the special tokens, English contractions, runs of letters, single digits,
# runs of anything else that is not a space. `\p{L}` / `\p{N}` need the `regex` module.
PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
TOKENIZER_FILES = ("vocab.json", "merges.txt")


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (the base alphabet of the vocabulary)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:  # bytes that are spaces or control characters get characters above 255
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


class CLIPTokenizer:
    """Text -> `(N, context_length)` int32 token ids: `<|startoftext|>`, BPE ids, `<|endoftext|>`, padding.

    Args:
        vocab: token -> id (`vocab.json`).
        merges: BPE merges in rank order, each a pair of tokens (`merges.txt` without its header).
        context_length: ids per text; longer texts are cut and still end with `<|endoftext|>`.
        pad_id: id after `<|endoftext|>` (transformers pads with `<|endoftext|>`, OpenCLIP with 0).
        unescape_html: decode HTML entities first, as OpenCLIP does (transformers does not).

    Example:
        >>> tok = CLIPTokenizer.from_directory("tests/fixtures/clip/transformers")  # doctest: +SKIP
        >>> tok(["a photo of a cat."])[0, :7]  # doctest: +SKIP
    """

    def __init__(self, vocab: dict[str, int], merges: Sequence[tuple[str, str]], context_length: int = 77,
                 pad_id: int | None = None, unescape_html: bool = False):
        import regex

        missing = [t for t in (START, END) if t not in vocab]
        if missing:
            raise KzooError(f"CLIP tokenizer: the vocabulary has no {missing[0]} token; expected CLIP's vocab.json")
        if context_length < 2:
            raise KzooError(f"CLIP tokenizer: context_length must be >= 2, got {context_length}")
        self.vocab = dict(vocab)
        self.ranks = {tuple(pair): i for i, pair in enumerate(merges)}
        self.context_length = int(context_length)
        self.start_id, self.end_id = self.vocab[START], self.vocab[END]
        self.pad_id = self.end_id if pad_id is None else int(pad_id)
        self.unescape_html = bool(unescape_html)
        self.byte_chars = bytes_to_unicode()
        self.pattern = regex.compile(PATTERN, regex.IGNORECASE)
        self._bpe = functools.lru_cache(maxsize=65536)(self._merge)

    @classmethod
    def from_directory(cls, directory: str, **kwargs) -> "CLIPTokenizer":
        """Read `vocab.json` + `merges.txt`, or the same two tables inside `tokenizer.json`."""
        vocab_path, merges_path = (os.path.join(directory, f) for f in TOKENIZER_FILES)
        if os.path.isfile(vocab_path) and os.path.isfile(merges_path):
            with open(vocab_path, encoding="utf-8") as f:
                vocab = json.load(f)
            with open(merges_path, encoding="utf-8") as f:
                lines = f.read().split("\n")
            merges = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
        elif os.path.isfile(os.path.join(directory, "tokenizer.json")):
            with open(os.path.join(directory, "tokenizer.json"), encoding="utf-8") as f:
                model = json.load(f).get("model", {})
            vocab = model.get("vocab") or {}
            merges = [tuple(m.split()) if isinstance(m, str) else tuple(m) for m in model.get("merges") or []]
        else:
            raise KzooError(f"{directory}: no CLIP tokenizer files (expected vocab.json + merges.txt, or "
                            "tokenizer.json, next to the weights); copy them from the checkpoint's repository")
        bad = next((m for m in merges if len(m) != 2), None)
        if bad is not None:
            raise KzooError(f"{directory}: merges must be pairs of tokens, got {' '.join(bad)!r}")
        return cls(vocab, merges, **kwargs)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def clean(self, text: str) -> str:
        text = unicodedata.normalize("NFC", text)
        if self.unescape_html:
            text = html.unescape(html.unescape(text))
        return " ".join(text.split()).lower()

    def _merge(self, piece: str) -> tuple[int, ...]:
        """BPE of one pre-token (already mapped to byte characters): repeatedly merge the best-ranked pair."""
        if piece in (START, END):
            return (self.vocab[piece],)
        word = list(piece[:-1]) + [piece[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:])}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        try:
            return tuple(self.vocab[token] for token in word)
        except KeyError as err:  # a merge whose result the vocabulary lacks: mismatched files
            raise KzooError(f"CLIP tokenizer: token {err.args[0]!r} is not in vocab.json; "
                            "vocab.json and merges.txt come from different tokenizers") from None

    def encode(self, text: str) -> list[int]:
        """The BPE ids of `text`, without the start/end tokens or padding."""
        ids: list[int] = []
        for piece in self.pattern.findall(self.clean(text)):
            if piece not in (START, END):
                piece = "".join(self.byte_chars[b] for b in piece.encode("utf-8"))
            ids.extend(self._bpe(piece))
        return ids

    def __call__(self, texts: str | Iterable[str]) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        rows = []
        for text in texts:
            ids = [self.start_id, *self.encode(text)][: self.context_length - 1] + [self.end_id]
            rows.append(ids + [self.pad_id] * (self.context_length - len(ids)))
        return np.asarray(rows, dtype="int32").reshape(-1, self.context_length)
