"""CLIP tests: the tiny random checkpoints of tests/fixtures/make_clip_fixtures.py, no network."""

import pathlib

import numpy as np
import pytest

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "clip"
LAYOUTS = ("transformers", "open_clip")


def reference(layout: str) -> dict:
    with np.load(FIXTURES / f"{layout}.npz", allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


@pytest.fixture(scope="module", params=LAYOUTS)
def clip(request):
    """(layout, loaded CLIPCheckpoint, torch reference arrays), one load per layout and module."""
    from kzoo.vlm import load_clip

    return request.param, load_clip(str(FIXTURES / request.param)), reference(request.param)
