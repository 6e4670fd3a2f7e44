"""Reusable Keras layers (keras.ops only, every backend)."""

from kzoo.layers.drop_path import DropPath
from kzoo.layers.position_embedding import PositionEmbedding, resample_position_embedding
from kzoo.layers.preprocess import ContrastNormalization, ImageNormalization
from kzoo.layers.vit_layers import ClassToken, MultiHeadSelfAttention, SequencePooling, TokenPooling, TokensToGrid

__all__ = [
    "ClassToken",
    "ContrastNormalization",
    "DropPath",
    "ImageNormalization",
    "MultiHeadSelfAttention",
    "PositionEmbedding",
    "SequencePooling",
    "TokenPooling",
    "TokensToGrid",
    "resample_position_embedding",
]

from kzoo.layers.multiscale import MultiScaleFusion  # noqa: E402
from kzoo.layers.odconv import ODConv2D, ODConvTemperatureScheduler  # noqa: E402

__all__ += ["MultiScaleFusion", "ODConv2D", "ODConvTemperatureScheduler"]
from kzoo.layers.cam import CAMHead  # noqa: E402

__all__ += ["CAMHead"]
from kzoo.layers.fusion import BranchGate, CAMGuidedPooling, WeightedBranchSum, saliency_pool  # noqa: E402

__all__ += ["BranchGate", "CAMGuidedPooling", "WeightedBranchSum", "saliency_pool"]
from kzoo.layers.whitening import PatchWhitening, adapt_whitening  # noqa: E402

__all__ += ["PatchWhitening", "adapt_whitening"]
from kzoo.layers.batchnorm import FusedBatchNormalization  # noqa: E402

__all__ += ["FusedBatchNormalization"]
