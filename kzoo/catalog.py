"""Every named model as data: its family builder (an import path, resolved on first build), input
size, default head, default checkpoint and configuration (keras-hub's presets, timm's
`default_cfgs`).

Nothing here imports Keras, so `kzoo models`, `kzoo train --help` and an unknown `--model` answer
in a fraction of a second instead of waiting seconds for TensorFlow to start. A new variant is one
`_variant(...)` line; a new family is a builder in `kzoo/models/` plus its lines here.
"""

from __future__ import annotations

from typing import Any

from kzoo.registry import register_model

INCEPTION_MEAN = (0.5, 0.5, 0.5)  # timm's ViT checkpoints normalise to [-1, 1]
INCEPTION_STD = (0.5, 0.5, 0.5)
_INCEPTION = dict(mean=INCEPTION_MEAN, std=INCEPTION_STD)
RESNETS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
VGG_DEPTHS = (11, 13, 16, 19)
MATCHED_DEFAULT_TARGET = 2_000_000
MATCHED_DESCRIPTIONS = {"matched_vgg": "VGG11-shaped CNN (BatchNorm, GAP + 2 FC) matched to",
                        "matched_vit": "ViT (class token, 4x4 patches at 32 px) matched to"}
_ODCONV_PAPER = "ODConv (Li, Zhou, Yao, ICLR 2022)"


def _variant(name: str, builder: str, **kwargs: Any) -> None:
    # A variant's Keras model carries the variant's name (the builder's `name` argument).
    register_model(name, f"kzoo.models.{builder}", keras_name=name, **kwargs)


def _vit() -> None:
    variants = {
        "vit_tiny_patch16_224": dict(patch_size=16, dim=192, depth=12, heads=3, mlp_dim=768),
        "vit_small_patch16_224": dict(patch_size=16, dim=384, depth=12, heads=6, mlp_dim=1536),
        "vit_base_patch16_224": dict(patch_size=16, dim=768, depth=12, heads=12, mlp_dim=3072),
        "vit_base_patch32_224": dict(patch_size=32, dim=768, depth=12, heads=12, mlp_dim=3072),
        "vit_large_patch16_224": dict(patch_size=16, dim=1024, depth=24, heads=16, mlp_dim=4096),
        "vit_huge_patch14_224": dict(patch_size=14, dim=1280, depth=32, heads=16, mlp_dim=5120),
    }
    # Default checkpoints: timm's AugReg ImageNet-21k -> 1k fine-tunes (ViT-H has none in that family).
    tags = {name: f"hf-hub:timm/{name}.augreg_in21k_ft_in1k" for name in variants if "huge" not in name}
    tags["vit_base_patch16_224"] = "hf-hub:timm/vit_base_patch16_224.augreg2_in21k_ft_in1k"
    for name, arch in variants.items():
        _variant(name, "vit:build_vit", family="vit", input_shape=(224, 224, 3), description=f"timm {name}",
                 pretrained=tags.get(name), **_INCEPTION, **arch)

    # Small-image ViTs: 4x4 patches on 32x32 give an 8x8 grid (parameters at 10 classes).
    tiny = dict(dim=128, depth=4, heads=2, mlp_dim=256)
    cifar = {
        "vit_cifar_tiny": (tiny, "0.55M params"),
        "vit_cifar_small": (dict(dim=192, depth=6, heads=3, mlp_dim=384), "1.8M params"),
        "vit_cifar_base": (dict(dim=256, depth=8, heads=4, mlp_dim=512), "4.2M params"),
        "vit_cifar_tiny_whiten": (dict(tiny, patch_whitening=True), "0.55M params, patch embedding = frozen "
                                  "whitening fitted to training patches + learned linear map"),
        "vit_cifar_tiny_whiten_gap": (dict(tiny, patch_whitening=True, pool="gap", class_token=False),
                                      "0.55M params, whitened patch embedding, average-pool head (no class token)"),
    }
    for name, (arch, what) in cifar.items():
        _variant(name, "vit:build_vit", family="vit", input_shape=(32, 32, 3),
                 description=f"ViT for 32x32 images, 4x4 patches, {what}", patch_size=4, **arch)
    _variant(
        "vit_keras_example", "vit:build_vit", family="vit", input_shape=(72, 72, 3),
        description="the keras.io example 'Image classification with Vision Transformer'",
        patch_size=6, dim=64, depth=8, heads=4,
        head_dim=64,  # Keras MultiHeadAttention(num_heads=4, key_dim=64): inner width 256
        mlp_dim=128, mlp_output_activation="gelu", class_token=False, pool="flatten", attn_dropout=0.1,
        mlp_dropout=0.1, head_hidden_units=(2048, 1024), head_dropout=0.5,
    )


def _vgg() -> None:
    for depth in VGG_DEPTHS:
        for bn in (False, True):
            name = f"vgg{depth}_bn" if bn else f"vgg{depth}"
            _variant(name, "vgg:build_vgg", family="vgg", input_shape=(224, 224, 3),
                     description=f"torchvision {name}", depth=depth, batch_norm=bn,
                     pretrained=f"hf-hub:timm/{name}.tv_in1k")
    for depth in (11, 16):
        _variant(f"vgg{depth}_bn_cifar", "vgg:build_vgg", family="vgg", input_shape=(32, 32, 3),
                 description=f"VGG-{depth} with BatchNorm and a GAP head for 32x32 images",
                 depth=depth, batch_norm=True, head="gap", dropout=0.0)
    for depth in (11, 16):
        _variant(f"vgg{depth}_cam", "vgg_cam:build_vgg_cam", family="vgg_cam", input_shape=(224, 224, 3),
                 description=f"VGG-{depth} conv stages + CAM head (logits and heatmap in one pass)", depth=depth)
    _variant("vgg11_bn_cam_cifar", "vgg_cam:build_vgg_cam", family="vgg_cam", input_shape=(32, 32, 3),
             description="VGG-11-BN for 32x32 images, CAM head on the 4x4 stage-4 map", depth=11,
             batch_norm=True, cam_stage=-2)


def _resnet() -> None:
    for depth, (kind, layers) in RESNETS.items():
        _variant(f"resnet{depth}", "resnet:build_resnet", family="resnet", input_shape=(224, 224, 3),
                 description=f"torchvision resnet{depth} (v1.5)", block=kind, layers=layers,
                 pretrained=f"hf-hub:timm/resnet{depth}.tv_in1k")
    for depth in (18, 34, 50):
        kind, layers = RESNETS[depth]
        _variant(f"resnet{depth}_cifar", "resnet:build_resnet", family="resnet", input_shape=(32, 32, 3),
                 description=f"resnet{depth} with a 3x3 stride-1 stem and no max-pool, for 32x32 images",
                 block=kind, layers=layers, stem="cifar")


def _odconv() -> None:
    for depth in (18, 50):
        builder = f"kzoo.models.odconv_nets:odresnet{depth}"
        register_model(f"odresnet{depth}", builder, family="odresnet", kernel_num=1,
                       description=f"ResNet-{depth} with ODConv block convolutions, kernel_num=1; {_ODCONV_PAPER}")
        for kn in (1, 4):
            register_model(f"odresnet{depth}_{kn}x", builder, family="odresnet", kernel_num=kn,
                           description=f"ResNet-{depth} with ODConv block convolutions, kernel_num={kn}; "
                                       f"{_ODCONV_PAPER}")
    register_model("odconv_gtsrb", "kzoo.models.odconv_nets:odconv_gtsrb", family="odconv_gtsrb",
                   input_shape=(32, 32, 3), num_classes=43,
                   description="compact multi-scale + ODConv network for 32x32 traffic signs (GTSRB, 43 classes)")
    register_model("conv_gtsrb", "kzoo.models.odconv_nets:conv_gtsrb", family="odconv_gtsrb",
                   input_shape=(32, 32, 3), num_classes=43, description="odconv_gtsrb's plain-Conv2D twin, same widths")


def _fusion() -> None:
    _variant("fusion_vit_b16_vgg16", "fusion:build_fusion", family="fusion", input_shape=(224, 224, 3),
             num_classes=2,
             description="ViT-B/16 global + CAM-guided VGG16 local branch (real vs generated); "
                         "fusion='concat'|'attention'",
             vit="vit_base_patch16_224", cnn="vgg16", fusion="concat")
    _variant("fusion_tiny", "fusion:build_fusion", family="fusion", input_shape=(32, 32, 3), num_classes=10,
             description="vit_cifar_tiny + CAM-guided half-width VGG-11-BN (4x4 stage-4 map) for 32x32 images",
             vit="vit_cifar_tiny", cnn="vgg11_bn_cifar",
             cnn_options={"width_multiplier": 0.5, "out_indices": (-2,)}, fusion="concat", dim=128)
    # The two CIFAR detectors of examples/aigc_detection.py fused whole: its branches are exactly
    # `vit_cifar_tiny` and `vgg11_bn_cam_cifar`'s body, so "fused vs each branch" compares like with like.
    _variant("fusion_cifar", "fusion:build_fusion", family="fusion", input_shape=(32, 32, 3), num_classes=10,
             description="vit_cifar_tiny + CAM-guided full-width VGG-11-BN (vgg11_bn_cam_cifar's 4x4 stage-4 map)",
             vit="vit_cifar_tiny", cnn="vgg11_bn_cifar", cnn_options={"out_indices": (-2,)}, fusion="concat",
             dim=128)


def _matched() -> None:
    for name, builder in (("matched_vgg", "matched:build_matched_vgg"), ("matched_vit", "matched:build_matched_vit")):
        _variant(name, builder, family="matched", input_shape=(32, 32, 3), num_classes=10,
                 description=f"{MATCHED_DESCRIPTIONS[name]} target_params (default {MATCHED_DEFAULT_TARGET:,})")
    _variant("vit_base_patch16_224_depth18", "vit:build_vit", family="vit", input_shape=(224, 224, 3),
             num_classes=100,
             description="ViT-B/16 with 18 blocks: the CNN-vs-Transformer source's ViT, 128,402,788 params at "
                         "100 classes",
             patch_size=16, dim=768, depth=18, heads=12, mlp_dim=3072, **_INCEPTION)


def _cifar_speed() -> None:
    _variant("airbench94", "airbench:build_airbench", family="airbench", input_shape=(32, 32, 3), num_classes=10,
             description="airbench94 (Jordan 2024): whitened 2x2 stem, conv groups of 64/256/256, 94% on CIFAR-10 "
                         "in ~10 epochs with its recipe")
    # SimCLR's linear probe reads the pooled features: widening only the last group (it runs at 7x7 and
    # 3x3) doubles them for 0.89x the pretraining pairs/s (docs/selfsup.md).
    _variant("airbench94_w512", "airbench:build_airbench", family="airbench", input_shape=(32, 32, 3),
             num_classes=10, widths=(64, 256, 512),
             description="airbench94 with its last conv group widened to 512 (512 pooled features): the "
                         "SimCLR backbone of docs/selfsup.md")
    # A larger whitening eps damps the stem's weak (high-frequency) directions, which noise and glass
    # blur fill, instead of boosting them up to 40x (docs/robustness.md).
    _variant("airbench94_damped", "airbench:build_airbench", family="airbench", input_shape=(32, 32, 3),
             num_classes=10, whiten_eps=0.1,
             description="airbench94 whose whitening stem uses eps 0.1 instead of 5e-4, so high-frequency "
                         "directions are damped, not amplified: the robustness model of docs/robustness.md")
    # Per-image standardisation before the stem: contrast, the corruption the damped model still
    # lost most to at severity 5 (30.5%), becomes a no-op up to pixel rounding.
    _variant("airbench94_damped_cn", "airbench:build_airbench", family="airbench", input_shape=(32, 32, 3),
             num_classes=10, whiten_eps=0.1, contrast_norm=True,
             description="airbench94_damped with per-image contrast normalisation before the stem, so scaling "
                         "an image's contrast does not change its prediction (docs/robustness.md)")
    _variant("cct_7_3x1", "cct:build_cct", family="cct", input_shape=(32, 32, 3), num_classes=10,
             description="CCT-7/3x1 (Hassani et al. 2021), the paper's CIFAR model: one conv3x3 tokenizer layer, "
                         "7 blocks of width 256, sequence pooling")
    # The race models: airbench94's first two groups as the tokenizer (7x7 tokens of width 256), no dropout.
    tokens = dict(tokenizer="airbench", tokenizer_widths=(64, 256), attn_dropout=0.0, drop_path=0.0)
    _variant("cct_airbench", "cct:build_cct", family="cct", input_shape=(32, 32, 3), num_classes=10,
             description="a compact convolutional transformer whose tokenizer is airbench94's whitened conv groups "
                         "(64, 256: 7x7 tokens), 2 blocks, sequence pooling; built for the transformer row of the "
                         "CPU race (docs/recipes.md)",
             depth=2, **tokens)
    _variant("cct_airbench_d1", "cct:build_cct", family="cct", input_shape=(32, 32, 3), num_classes=10,
             description="cct_airbench with one transformer block: 1.3-1.5x its training images/s on a 2-core CPU, "
                         "so more epochs in the race's hour; 88.04% (TTA) in 57 minutes (docs/recipes.md)",
             depth=1, **tokens)


for _family in (_vit, _vgg, _resnet, _odconv, _fusion, _matched, _cifar_speed):
    _family()
