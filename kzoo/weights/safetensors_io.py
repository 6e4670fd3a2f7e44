"""Reading a safetensors state dict lazily, with numpy only (no torch, never a pickle)."""

from __future__ import annotations

import json
import os
import struct
from typing import Iterator, Mapping

import numpy as np

from kzoo.errors import KzooError

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl", ".pickle")

CONVERT_HINT = (
    "python -c \"import torch; from safetensors.torch import save_file; "
    "save_file(torch.load('{path}', weights_only=True), '{stem}.safetensors')\""
)


def refuse_pickle(path: str) -> KzooError:
    """The one-line error for a pickled checkpoint: kzoo never unpickles; say how to convert."""
    stem = os.path.splitext(path)[0]
    return KzooError(
        f"{path} is a pickled torch checkpoint, which kzoo never loads (unpickling runs code); "
        f"convert it once to safetensors: {CONVERT_HINT.format(path=path, stem=stem)}"
    )


class StateDict(Mapping[str, np.ndarray]):
    """A read-only `{name: numpy array}` view of a `.safetensors` file; tensors are read on access.

    Only the header is parsed up front, so converting a model holds at most one checkpoint
    tensor at a time beside the model's own variables.

    Example:
        >>> with StateDict("model.safetensors") as sd:  # doctest: +SKIP
        ...     sd["head.weight"].shape
        (1000, 768)
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self._check_header()
        from safetensors import safe_open

        try:
            self._file = safe_open(self.path, framework="numpy")
            self._keys = list(self._file.keys())
            self.metadata = self._file.metadata() or {}
        except Exception as err:  # safetensors raises its own SafetensorError
            raise KzooError(f"{self.path} is not a readable safetensors file: {_one_line(err)}") from None

    def _check_header(self) -> None:
        # Check sizes ourselves: a truncated file would otherwise fail late, tensor by tensor.
        size = os.path.getsize(self.path)
        with open(self.path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise KzooError(f"{self.path} is not a safetensors file: only {size} bytes")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100_000_000:
                raise KzooError(
                    f"{self.path} is not a valid safetensors file (header length {n} > file size {size}): "
                    "truncated or not safetensors; download or convert it again"
                )
            try:
                header = json.loads(f.read(n))
            except ValueError:
                raise KzooError(f"{self.path} has a corrupt safetensors header; download or convert it again") from None
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end > size:
            raise KzooError(
                f"{self.path} is truncated: the header describes {8 + n + end} bytes, the file has {size}; "
                "download or convert it again"
            )

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._keys:
            raise KeyError(key)
        array = self._file.get_tensor(key)
        if array.dtype != np.float32 and np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)
        return array

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._file.get_slice(key).get_shape())

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key) -> bool:
        return key in self._keys

    def close(self) -> None:
        self._file = None

    def __enter__(self) -> "StateDict":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
