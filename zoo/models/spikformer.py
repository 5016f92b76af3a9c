"""Spikformer (Zhou et al., ICLR 2023), faithful to the official code (ZK-Zhou/spikformer).

Three code variants share one design: an SPS stem (conv-BN-LIF four times, max-pooling the *spikes*, then a
relative-position conv whose spikes are added to the stem's), blocks ``x + SSA(x)``, ``x + MLP(x)`` with
spike-add residuals, and a head on the mean over tokens and time. They differ in the layer types (which
also fix the state_dict shapes): CIFAR uses biased ``Linear`` layers on tokens-last ``[T, B, N, C]``;
ImageNet uses bias-free ``Conv1d`` for Q/K/V and ``Conv2d`` MLPs; CIFAR10-DVS uses ``Conv1d`` everywhere and
scales attention by 0.25. The official LayerNorms, DVS ``pos_embed`` and final LayerNorm are never used in
its forward pass and are not built here (``official_key_map`` drops them on import).

This module also holds the pieces the Spike-driven Transformer files reuse: the conv-BN-LIF stem stack,
the head split/merge of channel-first tensors, and the official-key translation helper.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

import torch
from torch import nn

from zoo.core import LIF, ConvBNLIF, LinearBN, MaxPool, conv_bn, spike_add
from zoo.models.base import SpikingClassifier
from zoo.registry import ModelCard, register_model

KeyRules = Sequence[tuple[str, str | None]]
PointwiseKind = Literal["linear", "conv1d", "conv2d"]


# ----------------------------------------------------------------------------------------- shared helpers

def translate_keys(official_keys: Iterable[str], rules: KeyRules) -> dict[str, str | None]:
    """Map official state_dict keys with the first ``(regex, template)`` rule that fully matches.

    A ``None`` template drops the tensor (official parameters the forward pass never uses); keys that
    match no rule are left out, so ``zoo.load_official_state_dict`` reports them.
    """
    mapped: dict[str, str | None] = {}
    for key in official_keys:
        for pattern, template in rules:
            match = re.fullmatch(pattern, key)
            if match:
                mapped[key] = None if template is None else match.expand(template)
                break
    return mapped


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Channel-first ``[T, B, C, *spatial]`` -> ``[T, B, heads, N, C // heads]`` (contiguous channel groups)."""
    return x.flatten(3).unflatten(2, (heads, -1)).transpose(-1, -2)


def merge_heads(y: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Inverse of :func:`split_heads`: ``[T, B, heads, N, d]`` -> ``shape`` (``[T, B, C, *spatial]``)."""
    return y.transpose(-1, -2).flatten(2, 3).reshape(shape)


def check_spatial(x: torch.Tensor, divisor: int, name: str) -> None:
    """Reject inputs whose height/width the pooling stages cannot halve evenly."""
    hw = tuple(x.shape[-2:])
    if hw[0] % divisor or hw[1] % divisor:
        raise ValueError(f"{name} expects height and width divisible by {divisor} (one factor 2 per max-pool), "
                         f"got {hw[0]}x{hw[1]} in input shape {list(x.shape)}")


class SpikingConvStack(nn.Module):
    """conv3x3-BN-LIF stages of growing width, each optionally followed by a 3x3/s2 max-pool on the spikes."""

    def __init__(self, in_channels: int, widths: Sequence[int], pools: Sequence[bool]) -> None:
        super().__init__()
        if len(widths) != len(pools):
            raise ValueError(f"SpikingConvStack needs one pool flag per stage: {len(widths)} widths, "
                             f"{len(pools)} flags")
        cins = [in_channels, *widths[:-1]]
        self.stages = nn.ModuleList(ConvBNLIF(cin, cout, kernel=3) for cin, cout in zip(cins, widths))
        self.pools = tuple(bool(p) for p in pools)
        self.pool = MaxPool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage, pooled in zip(self.stages, self.pools):
            x = stage(x)
            if pooled:
                x = self.pool(x)
        return x


def trunc_normal_linears(module: nn.Module) -> None:
    """The official Linear init (timm trunc_normal std 0.02, bias 0); other layers keep PyTorch defaults."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# ----------------------------------------------------------------------------------------- Spikformer blocks

class PointwiseBN(nn.Module):
    """A pointwise projection + BatchNorm in one of the official layer types (the type fixes weight shapes).

    ``linear``: ``Linear`` + BN1d on tokens-last ``[T, B, N, C]``; ``conv1d``: ``Conv1d`` + BN1d on the
    flattened tokens of ``[T, B, C, H, W]``; ``conv2d``: ``Conv2d`` + BN2d on ``[T, B, C, H, W]``.
    """

    def __init__(self, cin: int, cout: int, kind: PointwiseKind, bias: bool) -> None:
        super().__init__()
        if kind not in ("linear", "conv1d", "conv2d"):
            raise ValueError(f"unknown pointwise kind {kind!r}; expected 'linear', 'conv1d' or 'conv2d'")
        self.kind = kind
        if kind == "linear":
            self.body = LinearBN(cin, cout, bias=bias)
        else:
            self.body = conv_bn(cin, cout, 1, bias=bias, dims=1 if kind == "conv1d" else 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "conv1d":
            return self.body(x.flatten(3)).unflatten(3, x.shape[3:])
        return self.body(x)

    @staticmethod
    def key_prefixes(kind: PointwiseKind) -> tuple[str, str]:
        """Our sub-keys of the projection and of its BN: ``body.linear``/``body.bn`` or ``body.0``/``body.1``."""
        return ("body.linear", "body.bn") if kind == "linear" else ("body.0", "body.1")


class SpikformerSSA(nn.Module):
    """Spiking self-attention: ``Q, K, V = LIF(BN(proj(x)))``, ``LIF_0.5(Q K^T V * scale)``, ``LIF(BN(proj))``.

    Softmax-free; every product is between spike (integer) tensors, so in float32 ``Q (K^T V)`` is exact and
    equals the CIFAR/DVS code's ``(Q K^T) V`` bit for bit.
    """

    def __init__(self, dim: int, heads: int, kind: PointwiseKind, scale: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"SSA width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.scale = scale
        if kind not in ("linear", "conv1d"):
            raise ValueError(f"SSA projections are 'linear' (CIFAR) or 'conv1d' (ImageNet/DVS), got {kind!r}")
        self.tokens_last = kind == "linear"
        self.q = PointwiseBN(dim, dim, kind, bias=self.tokens_last)
        self.k = PointwiseBN(dim, dim, kind, bias=self.tokens_last)
        self.v = PointwiseBN(dim, dim, kind, bias=self.tokens_last)
        self.q_lif, self.k_lif, self.v_lif = LIF(), LIF(), LIF()
        self.attn_lif = LIF(v_threshold=0.5)
        self.proj = PointwiseBN(dim, dim, kind, bias=True)
        self.proj_lif = LIF()

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        if self.tokens_last:
            return x.unflatten(-1, (self.heads, -1)).transpose(2, 3)
        return split_heads(x, self.heads)

    def _merge(self, y: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        return y.transpose(2, 3).flatten(-2) if self.tokens_last else merge_heads(y, shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self._split(self.q_lif(self.q(x)))
        k = self._split(self.k_lif(self.k(x)))
        v = self._split(self.v_lif(self.v(x)))
        y = self._merge(q @ (k.transpose(-2, -1) @ v) * self.scale, x.shape)
        return self.proj_lif(self.proj(self.attn_lif(y)))


class SpikformerMLP(nn.Module):
    """``LIF(BN(fc2(LIF(BN(fc1(x))))))`` with hidden width ``mlp_ratio * C`` (biased fc layers)."""

    def __init__(self, dim: int, hidden: int, kind: PointwiseKind) -> None:
        super().__init__()
        self.fc1 = PointwiseBN(dim, hidden, kind, bias=True)
        self.fc1_lif = LIF()
        self.fc2 = PointwiseBN(hidden, dim, kind, bias=True)
        self.fc2_lif = LIF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2_lif(self.fc2(self.fc1_lif(self.fc1(x))))


class SpikformerBlock(nn.Module):
    """``x = x + SSA(x)``; ``x = x + MLP(x)`` (spike-add residuals, no normalisation)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, attn_kind: PointwiseKind,
                 mlp_kind: PointwiseKind, scale: float) -> None:
        super().__init__()
        self.attn = SpikformerSSA(dim, heads, attn_kind, scale)
        self.mlp = SpikformerMLP(dim, dim * mlp_ratio, mlp_kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = spike_add(x, self.attn(x))
        return spike_add(x, self.mlp(x))


class SPS(nn.Module):
    """Spiking patch splitting: four conv-BN-LIF(-maxpool) stages, then ``s + LIF(BN(conv3x3(s)))``."""

    def __init__(self, in_channels: int, dim: int, pools: Sequence[bool]) -> None:
        super().__init__()
        self.convs = SpikingConvStack(in_channels, [dim // 8, dim // 4, dim // 2, dim], pools)
        self.rpe = ConvBNLIF(dim, dim, kernel=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.convs(x)
        return spike_add(s, self.rpe(s))


@dataclass(frozen=True)
class SpikformerVariant:
    """What differs between the official CIFAR, ImageNet and CIFAR10-DVS code."""

    pools: tuple[bool, bool, bool, bool]
    attn_kind: PointwiseKind
    mlp_kind: PointwiseKind
    code_scale: float


VARIANTS = {
    "cifar": SpikformerVariant((False, False, True, True), "linear", "linear", 0.125),
    "imagenet": SpikformerVariant((True, True, True, True), "conv1d", "conv2d", 0.125),
    "dvs": SpikformerVariant((True, True, True, True), "conv1d", "conv1d", 0.25),
}


class Spikformer(SpikingClassifier):
    """Spikformer-``depth``-``dim`` in one of the official code variants (``cifar``, ``imagenet``, ``dvs``).

    Quirk switch (``official_quirks=True`` reproduces the code): ``quarter_scale`` -- the CIFAR10-DVS code
    scales attention by 0.25 (after ``A V``) where the paper describes one SSA for all datasets and the
    CIFAR/ImageNet code scale by 0.125. It defaults to ``official_quirks`` for the ``dvs`` variant and to
    False otherwise.
    """

    def __init__(self, variant: str, dim: int, depth: int, heads: int, num_classes: int, T: int,
                 mlp_ratio: int = 4, official_quirks: bool = True, quarter_scale: bool | None = None,
                 pools: Sequence[bool] | None = None) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown Spikformer variant {variant!r}; expected one of {sorted(VARIANTS)}")
        spec = VARIANTS[variant]
        if pools is not None:  # e.g. fewer pools for small inputs; the official variants fix them
            spec = replace(spec, pools=tuple(bool(p) for p in pools))
        dvs = variant == "dvs"
        super().__init__(T=T, num_classes=num_classes, in_channels=2 if dvs else 3,
                         input_kind="dvs" if dvs else "static")
        self.variant = spec
        self.quarter_scale = (official_quirks and spec.code_scale == 0.25) if quarter_scale is None else quarter_scale
        scale = 0.25 if self.quarter_scale else 0.125
        self.patch_embed = SPS(self.in_channels, dim, spec.pools)
        self.blocks = nn.ModuleList(
            SpikformerBlock(dim, heads, mlp_ratio, spec.attn_kind, spec.mlp_kind, scale) for _ in range(depth))
        self.head = nn.Linear(dim, num_classes)
        self.apply(trunc_normal_linears)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        check_spatial(x, 2 ** sum(self.variant.pools), type(self).__name__)
        x = self.patch_embed(x)
        tokens_last = self.variant.attn_kind == "linear"
        if tokens_last:
            x = x.flatten(3).transpose(-1, -2)
        for block in self.blocks:
            x = block(x)
        features = x.mean(2) if tokens_last else x.flatten(3).mean(3)
        return self.head(features)

    def official_key_map(self, official_keys: Iterable[str]) -> dict[str, str | None]:
        """Official ``model.py`` keys -> ours; unused LayerNorms, ``pos_embed`` and ``norm`` map to None."""
        attn_op, attn_bn = PointwiseBN.key_prefixes(self.variant.attn_kind)
        mlp_op, mlp_bn = PointwiseBN.key_prefixes(self.variant.mlp_kind)
        rules: list[tuple[str, str | None]] = [
            (r"patch_embed\.proj_conv\.(.+)", r"patch_embed.convs.stages.0.conv_bn.0.\1"),
            (r"patch_embed\.proj_bn\.(.+)", r"patch_embed.convs.stages.0.conv_bn.1.\1"),
            (r"patch_embed\.proj_conv(\d)\.(.+)", r"patch_embed.convs.stages.\1.conv_bn.0.\2"),
            (r"patch_embed\.proj_bn(\d)\.(.+)", r"patch_embed.convs.stages.\1.conv_bn.1.\2"),
            (r"patch_embed\.rpe_conv\.(.+)", r"patch_embed.rpe.conv_bn.0.\1"),
            (r"patch_embed\.rpe_bn\.(.+)", r"patch_embed.rpe.conv_bn.1.\1"),
            (r"block\.(\d+)\.attn\.(q|k|v|proj)_(?:linear|conv)\.(.+)", rf"blocks.\1.attn.\2.{attn_op}.\3"),
            (r"block\.(\d+)\.attn\.(q|k|v|proj)_bn\.(.+)", rf"blocks.\1.attn.\2.{attn_bn}.\3"),
            (r"block\.(\d+)\.mlp\.(fc\d)_(?:linear|conv)\.(.+)", rf"blocks.\1.mlp.\2.{mlp_op}.\3"),
            (r"block\.(\d+)\.mlp\.(fc\d)_bn\.(.+)", rf"blocks.\1.mlp.\2.{mlp_bn}.\3"),
            (r"block\.\d+\.norm[12]\.(weight|bias)", None),
            (r"pos_embed|norm\.(weight|bias)", None),
            (r"head\.(weight|bias)", r"head.\1"),
        ]
        return translate_keys(official_keys, rules)


# ----------------------------------------------------------------------------------------- registry

PAPER = "Spikformer: When Spiking Neural Network Meets Transformer (Zhou et al., ICLR 2023)"
REPO = "ZK-Zhou/spikformer@621268981827af47aa666c1b5f774de4281d90ad"


@dataclass(frozen=True)
class _Config:
    name: str
    variant: str
    dim: int
    depth: int
    heads: int
    num_classes: int
    T: int
    dataset: str
    input_shape: tuple[int, int, int]
    recipe: str
    table: str
    row: str
    claimed_params_m: float | None
    claimed_top1: float | None
    claimed_energy_mj: float | None
    code_params: int
    code_path: str
    notes: str


_NO_C100 = "No CIFAR100 config in the repo: the cifar10 model code with 100 classes (as the paper's CIFAR100 row)."
_DVS128 = ("No DVS128 Gesture code in the repo (issue #7): the CIFAR10-DVS model code with 11 classes, "
           "128x128 frames, T 16 as in the paper.")
_HEADS = ("Only 8-512 (8 heads) is in the code; this size uses the same class with {h} heads (64 channels per "
          "head, as 8-512); head count does not change parameters.")

CONFIGS = [
    _Config("spikformer_4_384.cifar10", "cifar", 384, 4, 12, 10, 4, "cifar10", (3, 32, 32), "spikformer_cifar",
            "table2_small", "Spikformer", 9.32, 95.51, None, 9_324_730, "cifar10/model.py",
            "cifar10.yml: dim 384, 4 layers, 12 heads, T 4."),
    _Config("spikformer_4_384.cifar100", "cifar", 384, 4, 12, 100, 4, "cifar100", (3, 32, 32), "spikformer_cifar",
            "table2_small", "Spikformer", 9.32, 78.21, None, 9_359_380, "cifar10/model.py", _NO_C100),
    _Config("spikformer_2_256.cifar10dvs", "dvs", 256, 2, 16, 10, 16, "cifar10dvs", (2, 128, 128),
            "spikformer_cifar10dvs", "table2_small", "Spikformer", 2.57, 80.9, None, 2_566_666,
            "cifar10dvs/model.py", "Registered model: dim 256, 2 layers, 16 heads; the official code hard-codes 128x128 frames, this one takes any size divisible by 16."),
    _Config("spikformer_2_256.dvs128", "dvs", 256, 2, 16, 11, 16, "dvs128", (2, 128, 128), "spikformer_dvs128",
            "table2_small", "Spikformer", 2.57, 98.3, None, 2_566_923, "cifar10dvs/model.py", _DVS128),
    _Config("spikformer_8_384.in1k", "imagenet", 384, 8, 6, 1000, 4, "imagenet", (3, 224, 224), "spikformer_in1k",
            "table1_imagenet", "Spikformer 8-384", 16.80, 70.24, 5.97, 16_816_024, "imagenet/model.py",
            _HEADS.format(h=6)),
    _Config("spikformer_8_512.in1k", "imagenet", 512, 8, 8, 1000, 4, "imagenet", (3, 224, 224), "spikformer_in1k",
            "table1_imagenet", "Spikformer 8-512", None, None, None, 29_689_384, "imagenet/model.py",
            "The registered ImageNet model (8 heads); MSViT's table 1 has no 8-512 row."),
    _Config("spikformer_8_768.in1k", "imagenet", 768, 8, 12, 1000, 4, "imagenet", (3, 224, 224), "spikformer_in1k",
            "table1_imagenet", "Spikformer 8-768", 66.30, 74.81, 20.0, 66_338_632, "imagenet/model.py",
            _HEADS.format(h=12)),
]


def _register(cfg: _Config) -> None:
    card = ModelCard(
        name=cfg.name, family="spikformer", paper=PAPER, table=cfg.table, row=cfg.row, dataset=cfg.dataset,
        input_shape=cfg.input_shape, T=cfg.T, num_classes=cfg.num_classes, recipe=cfg.recipe,
        claimed_params_m=cfg.claimed_params_m, claimed_top1=cfg.claimed_top1,
        claimed_energy_mj=cfg.claimed_energy_mj, code_params=cfg.code_params,
        official_code=f"{REPO}:{cfg.code_path}", notes=cfg.notes,
        extra={"variant": cfg.variant, "heads": cfg.heads, "depth": cfg.depth, "dim": cfg.dim},
    )

    register_model(card, partial(Spikformer, variant=cfg.variant, dim=cfg.dim, depth=cfg.depth, heads=cfg.heads,
                                 num_classes=cfg.num_classes, T=cfg.T))


for _cfg in CONFIGS:
    _register(_cfg)
