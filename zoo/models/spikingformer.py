"""Spikingformer (Zhou et al., arXiv 2304.11954), faithful to the official code (zhouchenlin2096/Spikingformer).

Spikingformer is Spikformer with spike-driven ("MS", pre-activation) residuals: every block adds to a float
membrane stream and each branch starts with its own LIF, so every conv and linear multiplies spikes only.

- Spiking tokenizer: conv3x3-BN on the input, then four stages ``LIF -> (max-pool 3x3/2) -> conv3x3-BN`` of widths
  dim/4, dim/2, dim, dim; CIFAR code pools in the last two stages (1/4), ImageNet and event code in all four (1/16).
- Block: ``x + SSA(x)``, ``x + MLP(x)``; SSA: ``S = LIF(x)``, ``Q, K, V = LIF(BN(conv1d(S)))`` (bias-free),
  ``LIF_0.5(Q K^T V * 0.125)``, ``BN(conv1d)`` (biased); MLP: ``BN(fc2(LIF(BN(fc1(LIF(x))))))`` (biased 1x1 convs).
- Head: the mean over tokens and then over time, then a Linear (the official order; ``per_step=True`` applies the
  Linear per step instead).

Event code (CIFAR10-DVS, DVS128 Gesture): LIF tau 1.5 instead of 2.0. The official LayerNorms ``norm1``/``norm2``
and ``DropPath`` are built but never used by its forward pass; they are not built here (``official_key_map`` drops
the LayerNorms on import), so parameter counts are those of the parameters the official forward uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

import torch
from torch import nn

from zoo.core import LIF, MaxPool, conv_bn, time_major
from zoo.models.base import SpikingClassifier
from zoo.models.spikformer import merge_heads, split_heads, translate_keys, trunc_normal_linears
from zoo.registry import ModelCard, register_model

Variant = Literal["cifar", "imagenet", "dvs"]
MLP_RATIO = 4
ATTN_SCALE = 0.125
EVENT_SIDE = 128  # the official event tokenizer reshapes to 64/32/16-pixel sides: 128x128 frames only


@dataclass(frozen=True)
class SpikingformerVariant:
    """What differs between the official CIFAR, ImageNet and event (CIFAR10-DVS / DVS128) code."""

    pools: tuple[bool, bool, bool, bool]
    tau: float
    input_kind: Literal["static", "dvs"]


VARIANTS: dict[str, SpikingformerVariant] = {
    "cifar": SpikingformerVariant((False, False, True, True), 2.0, "static"),
    "imagenet": SpikingformerVariant((True, True, True, True), 2.0, "static"),
    "dvs": SpikingformerVariant((True, True, True, True), 1.5, "dvs"),
}


class SpikingTokenizer(nn.Module):
    """conv3x3-BN, then four ``LIF -> optional max-pool -> conv3x3-BN`` stages (widths dim/4, dim/2, dim, dim).

    ``convs[i]`` is the official stage ``i`` (``block<i>``/``proj<i>``; stage 0 has no LIF before it).
    """

    def __init__(self, in_channels: int, dim: int, pools: tuple[bool, bool, bool, bool], tau: float) -> None:
        super().__init__()
        widths = [in_channels, dim // 8, dim // 4, dim // 2, dim, dim]
        self.convs = nn.ModuleList(conv_bn(widths[i], widths[i + 1], 3) for i in range(5))
        self.lifs = nn.ModuleList(LIF(tau) for _ in range(4))
        self.pools = nn.ModuleList(MaxPool() if p else nn.Identity() for p in pools)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs[0](x)
        for lif, pool, conv in zip(self.lifs, self.pools, self.convs[1:]):
            x = conv(pool(lif(x)))
        return x


class SpikingSelfAttention(nn.Module):
    """Spike-driven SSA on a membrane stream ``[T, B, C, H, W]``; returns the BN'd projection (no output LIF).

    All products are between spike (integer) tensors, so in float32 ``Q (K^T V)`` is exact and equals the CIFAR and
    event code's ``(Q K^T) V`` (and the ImageNet code's order) bit for bit.
    """

    def __init__(self, dim: int, heads: int, tau: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"Spikingformer attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.input_lif = LIF(tau)
        self.q, self.k, self.v = (conv_bn(dim, dim, 1, dims=1) for _ in range(3))
        self.q_lif, self.k_lif, self.v_lif = LIF(tau), LIF(tau), LIF(tau)
        self.attn_lif = LIF(tau, v_threshold=0.5)
        self.proj = conv_bn(dim, dim, 1, bias=True, dims=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.input_lif(x).flatten(3)
        q = split_heads(self.q_lif(self.q(s)), self.heads)
        k = split_heads(self.k_lif(self.k(s)), self.heads)
        v = split_heads(self.v_lif(self.v(s)), self.heads)
        y = merge_heads(q @ (k.transpose(-2, -1) @ v) * ATTN_SCALE, s.shape)
        return self.proj(self.attn_lif(y)).view_as(x)


class MLP(nn.Module):
    """``BN(fc2(LIF(BN(fc1(LIF(x))))))`` with biased 1x1 convs, hidden width ``4 * dim``."""

    def __init__(self, dim: int, tau: float) -> None:
        super().__init__()
        self.fc1_lif, self.fc1 = LIF(tau), conv_bn(dim, dim * MLP_RATIO, 1, bias=True)
        self.fc2_lif, self.fc2 = LIF(tau), conv_bn(dim * MLP_RATIO, dim, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc2_lif(self.fc1(self.fc1_lif(x))))


class Block(nn.Module):
    """``x + SSA(x)``, then ``x + MLP(x)`` (spike-driven residuals on the membrane stream)."""

    def __init__(self, dim: int, heads: int, tau: float) -> None:
        super().__init__()
        self.attn = SpikingSelfAttention(dim, heads, tau)
        self.mlp = MLP(dim, tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class Spikingformer(SpikingClassifier):
    """Spikingformer-``depth``-``dim`` in one of the official code variants (``cifar``, ``imagenet``, ``dvs``).

    ``tau``: the LIF time constant (default: the variant's, 1.5 in the event code, 2.0 elsewhere). ``pools``: which
    tokenizer stages max-pool (default: the variant's; fewer for small inputs, e.g. the smoke suite's 16x16 digits).
    Quirk switch (``official_quirks``): ``fixed_event_grid`` -- the event code reshapes the tokenizer's stages to
    hard-coded 64/32/16-pixel sides, so it runs on 128x128 frames only; with the quirk (default for ``dvs``) other
    sizes are rejected with one line, without it any size divisible by 16 runs.
    """

    def __init__(self, variant: Variant, dim: int, depth: int, heads: int, num_classes: int, T: int,
                 tau: float | None = None, pools: Sequence[bool] | None = None, official_quirks: bool = True,
                 fixed_event_grid: bool | None = None) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown Spikingformer variant {variant!r}; expected one of {sorted(VARIANTS)}")
        if dim % 8:
            raise ValueError(f"Spikingformer width {dim} must be divisible by 8 (the tokenizer's first stage is dim/8)")
        spec = VARIANTS[variant]
        if pools is not None:
            if len(pools) != 4:
                raise ValueError(f"Spikingformer pools needs one flag per tokenizer stage (4), got {list(pools)}")
            spec = replace(spec, pools=tuple(bool(p) for p in pools))
        super().__init__(T=T, num_classes=num_classes, in_channels=2 if spec.input_kind == "dvs" else 3,
                         input_kind=spec.input_kind)
        self.variant = spec
        self.downsample = 2 ** sum(spec.pools)
        quirk = official_quirks if fixed_event_grid is None else fixed_event_grid
        self.fixed_event_grid = bool(quirk) and variant == "dvs"
        tau = spec.tau if tau is None else tau
        self.patch_embed = SpikingTokenizer(self.in_channels, dim, spec.pools, tau)
        self.blocks = nn.ModuleList(Block(dim, heads, tau) for _ in range(depth))
        self.head = nn.Linear(dim, num_classes)
        self.apply(trunc_normal_linears)

    def _check_input_side(self, x: torch.Tensor) -> None:
        h, w = x.shape[-2:]
        if self.fixed_event_grid and (h, w) != (EVENT_SIDE, EVENT_SIDE):
            raise ValueError(f"Spikingformer's official event tokenizer hard-codes {EVENT_SIDE}x{EVENT_SIDE} frames, "
                             f"got {h}x{w}; build with official_quirks=False to take any size divisible by 16")
        if h % self.downsample or w % self.downsample:
            raise ValueError(f"Spikingformer expects height and width divisible by {self.downsample} (one factor 2 "
                             f"per max-pool), got {h}x{w}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]`` input -> ``[T, B, dim]`` features (the mean over tokens)."""
        self._check_input_side(x)
        x = self.patch_embed(x)
        for block in self.blocks:
            x = block(x)
        return x.flatten(3).mean(3)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor, per_step: bool = False) -> torch.Tensor:
        if per_step:
            return super().forward(x, per_step=True)
        feats = self.features(time_major(x, self.T, self.input_kind, self.in_channels, type(self).__name__))
        return self.head(feats.mean(0))  # the official order: average over time, then the Linear

    def official_key_map(self, official_keys: Iterable[str]) -> dict[str, str | None]:
        """Official keys (CIFAR ``patch_embed.block<i>_*``, ImageNet/event ``patch_embed.proj[<i>]_*``) -> ours;
        the unused ``norm1``/``norm2`` LayerNorms map to None."""
        return translate_keys(official_keys, _KEY_RULES)


_KEY_RULES: list[tuple[str, str | None]] = [
    (r"patch_embed\.(?:block0|proj)_conv\.(.+)", r"patch_embed.convs.0.0.\1"),
    (r"patch_embed\.(?:block0|proj)_bn\.(.+)", r"patch_embed.convs.0.1.\1"),
    (r"patch_embed\.(?:block|proj)([1-4])_conv\.(.+)", r"patch_embed.convs.\1.0.\2"),
    (r"patch_embed\.(?:block|proj)([1-4])_bn\.(.+)", r"patch_embed.convs.\1.1.\2"),
    (r"block\.(\d+)\.attn\.(q|k|v|proj)_conv\.(.+)", r"blocks.\1.attn.\2.0.\3"),
    (r"block\.(\d+)\.attn\.(q|k|v|proj)_bn\.(.+)", r"blocks.\1.attn.\2.1.\3"),
    (r"block\.(\d+)\.mlp\.mlp([12])_conv\.(.+)", r"blocks.\1.mlp.fc\2.0.\3"),
    (r"block\.(\d+)\.mlp\.mlp([12])_bn\.(.+)", r"blocks.\1.mlp.fc\2.1.\3"),
    (r"block\.\d+\.norm[12]\.(?:weight|bias)", None),
    (r"head\.(weight|bias)", r"head.\1"),
]


# ----------------------------------------------------------------------------------------- registry

PAPER = "Spikingformer: Spike-driven Residual Learning for Transformer-based Spiking Neural Network (Zhou et al., 2023)"
REPO = "zhouchenlin2096/Spikingformer@4378623"
CLAIMS = "as printed in the official README's result tables (the paper's own tables were not read in this session)"
QUIRKS = ("official_quirks switches one official-code behaviour: the event code's fixed 128x128 grid "
          "(fixed_event_grid). Paper-vs-code differences are not switchable: the paper's method text was not read "
          "in this session.")


@dataclass(frozen=True)
class _Config:
    name: str
    variant: Variant
    dim: int
    depth: int
    heads: int
    num_classes: int
    T: int
    dataset: str
    side: int
    recipe: str
    table: str
    row: str
    claimed_params_m: float
    claimed_top1: float | None
    claimed_energy_mj: float | None
    code_params: int
    code_path: str
    notes: str


_CIFAR_HEADS = ("The official code registers only 4-384 (cifar10.yml: 12 heads; cifar100.yml: 8 heads); this size "
                "uses the same class with {h} heads (32 channels per head, as cifar10.yml); heads do not change "
                "parameters.")
_IN1K_HEADS = ("imagenet.yml sets 8 heads for every width; this size uses them. Released weights: 8-768 only "
               "(README, Baidu Netdisk, password abcd).")
_LOG = " The top-1 claim equals the best epoch of the shipped log {log} ({value})."
_EVENT = ("The event model (cifar10-dvs/model.py; dvs128-gesture/model.py is the same with 11 classes): dim 256, 2 "
          "blocks, 16 heads, LIF tau 1.5, 128x128 frames (official_quirks rejects other sizes), T {T} (the README's "
          "T {T} row; train.py's default T is 16).")

CONFIGS = [
    _Config("spikingformer_4_384.cifar10", "cifar", 384, 4, 12, 10, 4, "cifar10", 32, "spikingformer_cifar10",
            "table2_small", "Spikingformer-4-384", 9.32, 95.61, None, 9_320_122, "cifar10/model.py + cifar10.yml",
            "cifar10.yml: dim 384, 4 blocks, 12 heads, T 4, 400 epochs. The README also lists 4-384-400E at 95.81 "
            "and ships those weights (Baidu Netdisk, password abcd)."),
    _Config("spikingformer_4_384.cifar100", "cifar", 384, 4, 8, 100, 4, "cifar100", 32, "spikingformer_cifar100",
            "table2_small", "Spikingformer-4-384", 9.32, 79.09, None, 9_354_772, "cifar100/model.py + cifar100.yml",
            "cifar100.yml: dim 384, 4 blocks, 8 heads (cifar10.yml has 12), T 4, 400 epochs. The README's "
            "4-384-400E row claims 79.21 (no CIFAR-100 weights released)."),
    _Config("spikingformer_4_256.cifar10", "cifar", 256, 4, 8, 10, 4, "cifar10", 32, "spikingformer_cifar10",
            "table2_small", "Spikingformer-4-256", 4.15, 94.77, None, 4_152_106, "cifar10/model.py",
            _CIFAR_HEADS.format(h=8)),
    _Config("spikingformer_4_256.cifar100", "cifar", 256, 4, 8, 100, 4, "cifar100", 32, "spikingformer_cifar100",
            "table2_small", "Spikingformer-4-256", 4.15, 77.43, None, 4_175_236, "cifar100/model.py",
            _CIFAR_HEADS.format(h=8)),
    _Config("spikingformer_2_384.cifar10", "cifar", 384, 2, 12, 10, 4, "cifar10", 32, "spikingformer_cifar10",
            "table2_small", "Spikingformer-2-384", 5.76, 95.22, None, 5_762_746, "cifar10/model.py",
            _CIFAR_HEADS.format(h=12)),
    _Config("spikingformer_2_384.cifar100", "cifar", 384, 2, 12, 100, 4, "cifar100", 32, "spikingformer_cifar100",
            "table2_small", "Spikingformer-2-384", 5.76, 78.34, None, 5_797_396, "cifar100/model.py",
            _CIFAR_HEADS.format(h=12)),
    _Config("spikingformer_2_256.cifar10dvs", "dvs", 256, 2, 16, 10, 16, "cifar10dvs", 128,
            "spikingformer_cifar10dvs", "table2_small", "Spikingformer-2-256 (T 16)", 2.57, 81.3, None, 2_566_666,
            "cifar10-dvs/model.py", _EVENT.format(T=16)
            + _LOG.format(log="origin_logs/cifar10dvs/Spikingformer-on-cifar10dvs.text", value="max_test_acc1 81.3")),
    _Config("spikingformer_2_256_t10.cifar10dvs", "dvs", 256, 2, 16, 10, 10, "cifar10dvs", 128,
            "spikingformer_cifar10dvs", "table2_small", "Spikingformer-2-256 (T 10)", 2.57, 79.9, None,
            2_566_666, "cifar10-dvs/model.py", _EVENT.format(T=10)),
    _Config("spikingformer_2_256.dvs128", "dvs", 256, 2, 16, 11, 16, "dvs128", 128, "spikingformer_dvs128",
            "table2_small", "Spikingformer-2-256 (T 16)", 2.57, 98.3, None, 2_566_923, "dvs128-gesture/model.py",
            _EVENT.format(T=16)),
    _Config("spikingformer_2_256_t10.dvs128", "dvs", 256, 2, 16, 11, 10, "dvs128", 128, "spikingformer_dvs128",
            "table2_small", "Spikingformer-2-256 (T 10)", 2.57, 96.2, None, 2_566_923, "dvs128-gesture/model.py",
            _EVENT.format(T=10)),
    _Config("spikingformer_8_384.in1k", "imagenet", 384, 8, 8, 1000, 4, "imagenet", 224, "spikingformer_in1k",
            "table1_imagenet", "Spikingformer-8-384", 16.81, 72.45, 4.69, 16_816_024, "imagenet/model.py",
            _IN1K_HEADS),
    _Config("spikingformer_8_512.in1k", "imagenet", 512, 8, 8, 1000, 4, "imagenet", 224, "spikingformer_in1k",
            "table1_imagenet", "Spikingformer-8-512", 29.68, 74.79, 7.46, 29_689_384, "imagenet/model.py",
            _IN1K_HEADS + _LOG.format(log="origin_logs/imagenet/Spikingformer-on-Imagenet-512.text", value=74.792)),
    _Config("spikingformer_8_768.in1k", "imagenet", 768, 8, 8, 1000, 4, "imagenet", 224, "spikingformer_in1k_768",
            "table1_imagenet", "Spikingformer-8-768", 66.34, 75.85, 13.68, 66_338_632,
            "imagenet/model.py + imagenet.yml",
            _IN1K_HEADS + _LOG.format(log="origin_logs/imagenet/Spikingformer-on-Imagenet-768.text", value=75.848)),
]


def _register(cfg: _Config) -> None:
    in_channels = 2 if cfg.variant == "dvs" else 3
    card = ModelCard(
        name=cfg.name, family="spikingformer", paper=PAPER, table=cfg.table, row=cfg.row, dataset=cfg.dataset,
        input_shape=(in_channels, cfg.side, cfg.side), T=cfg.T, num_classes=cfg.num_classes, recipe=cfg.recipe,
        claimed_params_m=cfg.claimed_params_m, claimed_top1=cfg.claimed_top1,
        claimed_energy_mj=cfg.claimed_energy_mj, code_params=cfg.code_params,
        official_code=f"{REPO}:{cfg.code_path}", notes=f"Claims {CLAIMS}. {cfg.notes} {QUIRKS}",
        extra={"variant": cfg.variant, "heads": cfg.heads, "depth": cfg.depth, "dim": cfg.dim},
    )
    register_model(card, partial(Spikingformer, variant=cfg.variant, dim=cfg.dim, depth=cfg.depth, heads=cfg.heads,
                                 num_classes=cfg.num_classes, T=cfg.T))


for _cfg in CONFIGS:
    _register(_cfg)
