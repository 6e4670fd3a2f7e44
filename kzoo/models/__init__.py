"""Model families; importing this package registers every named variant.

A new family is one module that calls `kzoo.registry.register_model` at import time,
plus one import line below.
"""

from kzoo.models import resnet, vgg, vit  # noqa: F401  (imported for their registrations)

from kzoo.models.resnet import build_resnet
from kzoo.models.vgg import build_vgg
from kzoo.models.vit import ViTConfig, build_vit

__all__ = ["ViTConfig", "build_resnet", "build_vgg", "build_vit"]
from kzoo.models import odconv_nets  # noqa: F401,E402  (ODConv families: odresnet*, odconv_gtsrb, conv_gtsrb)
from kzoo.models import vgg_cam  # noqa: F401,E402
from kzoo.models import fusion  # noqa: F401,E402  (fusion_vit_b16_vgg16, fusion_tiny)
from kzoo.models.fusion import build_fusion, freeze_branch, fusion_weights  # noqa: E402

__all__ += ["build_fusion", "freeze_branch", "fusion_weights"]
from kzoo.models import matched  # noqa: F401,E402  (matched_vgg/matched_vit, vit_base_patch16_224_depth18)
from kzoo.models import airbench  # noqa: F401,E402  (airbench94, the fast CIFAR-10 network)
from kzoo.models.airbench import build_airbench  # noqa: E402

__all__ += ["build_airbench"]
from kzoo.models import cct  # noqa: F401,E402  (compact convolutional transformers: cct_7_3x1, cct_airbench)
from kzoo.models.cct import build_cct  # noqa: E402

__all__ += ["build_cct"]
