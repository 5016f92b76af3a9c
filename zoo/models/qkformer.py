"""QKFormer (Zhou et al., NeurIPS 2024): hierarchical spiking transformer with Q-K token attention.

Three parts shared with MSViT (a QKFormer fork, ``zoo/models/msvit.py``) live here:
- ``ShortcutEmbedding``: patch embedding with a deformed shortcut (conv-BN-[pool]-LIF layers plus a strided
  1x1 conv-BN-LIF shortcut, spike-added), used for every stem and every down-sampling stage;
- ``TokenAttention``: per-head channel sums of spiking score maps -> LIF -> binary token mask on K -> proj;
- ``SpikingSelfAttention`` (SSA) and ``SpikingMLP``, wrapped by ``SpikingBlock`` (two spike-add residuals);
and ``HierarchicalSpikingTransformer``, the model skeleton both families configure.

Faithful to the official code (zhouchenlin2096/QKFormer) including its quirk: SSA's output neuron runs on
the flattened ``[T*B, C, N]`` tensor, so its membrane carries over from one sample (and time step) to the
next. ``official_quirks=False`` (or ``ssa_proj_over_tb=False``) gives the paper's per-sample neuron.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from zoo.core import LIF, ConvBNLIF, spike_add
from zoo.models.base import SpikingClassifier
from zoo.registry import ModelCard, register_model

QKFORMER_REPO = "zhouchenlin2096/QKFormer@c2a00e8e54538e76f5954614a60c1d53824bbee9"
QKFORMER_PAPER = "QKFormer: Hierarchical Spiking Transformer using Q-K Attention (Zhou et al., NeurIPS 2024)"
MSVIT_PAPER_TABLES = "numbers as quoted by the MSViT paper (Hua et al., IJCAI 2025)"


def conv_pool_lif(cin: int, cout: int, kernel: int = 3, stride: int = 1, pool: bool = False) -> ConvBNLIF:
    """conv -> BN -> (3x3/s2 max-pool) -> LIF: the unit of every official patch-embedding layer."""
    unit = ConvBNLIF(cin, cout, kernel, stride)
    if pool:
        unit.conv_bn.append(nn.MaxPool2d(3, 2, 1))
    return unit


class TokenConvLIF(ConvBNLIF):
    """conv1d -> BN -> LIF over the raster-flattened tokens: ``[T,B,C,H,W]`` -> spikes ``[T,B,C',N]``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, bias: bool = False) -> None:
        super().__init__(cin, cout, kernel, bias=bias, dims=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(3))


class ShortcutEmbedding(nn.Module):
    """Patch embedding with a deformed shortcut (QKFormer's SPEDS, MSViT's SPEMSF).

    Main path: 3x3 conv-BN-[pool]-LIF layers of the given ``widths``/``pools``. Shortcut: a 1x1 conv-BN-LIF
    from the map after layer ``tap`` (-1 = the input), strided by the pools that follow it. Output: the
    spike-add of both.
    """

    def __init__(self, cin: int, widths: Sequence[int], pools: Sequence[bool], tap: int) -> None:
        super().__init__()
        if len(widths) != len(pools) or not -1 <= tap < len(widths) - 1:
            raise ValueError(f"ShortcutEmbedding needs one pool flag per width and -1 <= tap < {len(widths) - 1}; "
                             f"got widths={list(widths)}, pools={list(pools)}, tap={tap}")
        chans = [cin, *widths]
        self.layers = nn.ModuleList(conv_pool_lif(chans[i], chans[i + 1], 3, pool=p) for i, p in enumerate(pools))
        self.tap = tap
        stride = 2 ** sum(pools[tap + 1:])
        self.shortcut = conv_pool_lif(chans[tap + 1], widths[-1], kernel=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        source = x
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == self.tap:
                source = x
        return spike_add(x, self.shortcut(source))


def stem_embedding(kind: str, cin: int, width: int) -> ShortcutEmbedding:
    """The official stems (``PatchEmbedInit``): 'cifar' (no pooling), 'imagenet' (/4), 'dvs' (/8)."""
    if kind == "cifar":
        return ShortcutEmbedding(cin, (width // 2, width), (False, False), tap=0)
    if kind == "imagenet":
        return ShortcutEmbedding(cin, (width // 2, width, width), (True, True, False), tap=0)
    if kind == "dvs":
        return ShortcutEmbedding(cin, (width // 8, width // 4, width // 2, width), (False, True, True, True), tap=1)
    raise ValueError(f"unknown stem {kind!r}; expected 'cifar', 'imagenet' or 'dvs'")


def stage_embedding(cin: int, cout: int, pool_after: str) -> ShortcutEmbedding:
    """Down-sampling stage (``PatchEmbeddingStage``): two 3x3 layers, pooled after the 'first' or 'second'."""
    if pool_after not in ("first", "second"):
        raise ValueError(f"embed_pool must be 'first' or 'second', got {pool_after!r}")
    return ShortcutEmbedding(cin, (cout, cout), (pool_after == "first", pool_after == "second"), tap=-1)


def _check_heads(dim: int, heads: int) -> None:
    if heads < 1 or dim % heads:
        raise ValueError(f"width {dim} is not divisible into {heads} heads")


class TokenAttention(nn.Module):
    """Token attention without softmax: ``mask = LIF(sum over each head's channels of every score map)``.

    ``scores`` maps branch names to modules ``[T,B,C,H,W] -> spikes [T,B,C,N]`` (QKFormer: ``{'q': ...}``;
    MSViT adds ``'p'``). The binary ``[T,B,heads,1,N]`` mask selects tokens of ``K``; then conv1d-BN-LIF proj.
    """

    def __init__(self, dim: int, heads: int, scores: Mapping[str, nn.Module], attn_threshold: float) -> None:
        super().__init__()
        _check_heads(dim, heads)
        if not scores or set(scores) & {"k", "proj", "attn_lif"}:
            raise ValueError(f"score branch names must be non-empty and not k/proj/attn_lif, got {list(scores)}")
        self.heads = heads
        self.score_names = tuple(scores)
        for name, module in scores.items():
            self.add_module(name, module)
        self.k = TokenConvLIF(dim, dim)
        self.attn_lif = LIF(v_threshold=attn_threshold)
        self.proj = ConvBNLIF(dim, dim, 1, bias=True, dims=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, c, h, w = x.shape
        per_head = (self.heads, c // self.heads)
        score = sum(getattr(self, name)(x).unflatten(2, per_head).sum(3, keepdim=True) for name in self.score_names)
        mask = self.attn_lif(score)
        y = (mask * self.k(x).unflatten(2, per_head)).flatten(2, 3)
        return self.proj(y).reshape(t, b, c, h, w)


def qk_token_attention(dim: int, heads: int, attn_threshold: float = 0.5) -> TokenAttention:
    """QKFormer's Q-K token attention (TQKA): the mask comes from Q alone."""
    return TokenAttention(dim, heads, {"q": TokenConvLIF(dim, dim)}, attn_threshold)


class SpikingSelfAttention(nn.Module):
    """SSA: ``LIF_attn(Q (K^T V) * 0.125)`` per head, then conv1d-BN-LIF proj.

    ``proj_over_tb=True`` reproduces the official code: the proj neuron sees ``[T*B, C, N]`` and treats the
    flattened ``T*B`` axis as time. ``False`` runs it over ``[T, B, C, N]`` (time only).
    """

    def __init__(self, dim: int, heads: int, attn_threshold: float = 0.5, proj_over_tb: bool = True,
                 scale: float = 0.125) -> None:
        super().__init__()
        _check_heads(dim, heads)
        self.heads = heads
        self.scale = scale
        self.proj_over_tb = proj_over_tb
        self.q = TokenConvLIF(dim, dim)
        self.k = TokenConvLIF(dim, dim)
        self.v = TokenConvLIF(dim, dim)
        self.attn_lif = LIF(v_threshold=attn_threshold)
        self.proj = ConvBNLIF(dim, dim, 1, bias=True, dims=1)

    @property
    def couples_batch(self) -> bool:
        """True when the proj neuron runs over ``T*B``: a sample's output then depends on its batch neighbours."""
        return self.proj_over_tb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, c, h, w = x.shape
        per_head = (self.heads, c // self.heads)
        q, k, v = (branch(x).unflatten(2, per_head).transpose(-1, -2) for branch in (self.q, self.k, self.v))
        y = (q @ (k.transpose(-2, -1) @ v)) * self.scale
        y = self.attn_lif(y.transpose(-1, -2).reshape(t, b, c, h * w))
        y = self.proj.conv_bn(y)
        if self.proj_over_tb:
            y = self.proj.lif(y.flatten(0, 1)).unflatten(0, (t, b))
        else:
            y = self.proj.lif(y)
        return y.reshape(t, b, c, h, w)


class SpikingMLP(nn.Module):
    """1x1 conv-BN-LIF (C -> hidden) then 1x1 conv-BN-LIF (hidden -> C), convs with bias."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = ConvBNLIF(dim, hidden, 1, bias=True)
        self.fc2 = ConvBNLIF(hidden, dim, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class SpikingBlock(nn.Module):
    """``x + attn(x)`` then ``x + mlp(x)``: spike-add residuals, no normalisation layers."""

    def __init__(self, attn: nn.Module, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        self.attn = attn
        self.mlp = SpikingMLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = spike_add(x, self.attn(x))
        return spike_add(x, self.mlp(x))


@dataclass(frozen=True)
class OfficialNames:
    """Module names of one official code base, for mapping its state_dict keys onto ours."""

    stem: tuple[str, ...]
    embed: tuple[str, str]
    mlp: tuple[str, str]
    token_attn: str
    ssa: str


OFFICIAL_NAMES = {
    "cifar": OfficialNames(("proj", "proj1"), ("proj3", "proj4"), ("mlp1", "mlp2"), "tssa", "ssa"),
    "imagenet": OfficialNames(("proj", "proj1", "proj2"), ("proj3", "proj4"), ("fc1", "fc2"), "tssa", "attn"),
    "dvs": OfficialNames(("proj", "proj1", "proj2", "proj3"), ("proj", "proj4"), ("mlp1", "mlp2"), "tssa", "ssa"),
}

AttentionFactory = Callable[[bool, int], nn.Module]


class HierarchicalSpikingTransformer(SpikingClassifier):
    """Stem, then per stage: a down-sampling embedding (stages 2+) and ``depths[i]`` blocks of ``widths[i]``.

    ``make_attention(is_last_stage, width)`` builds each block's attention (token attention in early
    stages, SSA in the last one, for both families). Head: mean over tokens -> Linear, per time step.
    """

    def __init__(self, *, T: int, num_classes: int, in_channels: int, input_kind: str, widths: Sequence[int],
                 depths: Sequence[int], mlp_ratio: float, stem: str, embed_pool: str,
                 make_attention: AttentionFactory, official_quirks: bool) -> None:
        super().__init__(T, num_classes, in_channels, input_kind)
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"widths {list(widths)} and depths {list(depths)} must be non-empty and equally long")
        self.official_quirks = bool(official_quirks)
        embeds = [stem_embedding(stem, in_channels, widths[0])]
        embeds += [stage_embedding(widths[i - 1], widths[i], embed_pool) for i in range(1, len(widths))]
        self.embeds = nn.ModuleList(embeds)
        self.official_names = OFFICIAL_NAMES[stem]
        last = len(widths) - 1
        self.stages = nn.ModuleList(
            nn.ModuleList(SpikingBlock(make_attention(i == last, w), w, mlp_ratio) for _ in range(d))
            for i, (w, d) in enumerate(zip(widths, depths)))
        self.head = nn.Linear(widths[-1], num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        for embed, blocks in zip(self.embeds, self.stages):
            x = embed(x)
            for block in blocks:
                x = block(x)
        return self.head(x.flatten(3).mean(3))

    def official_key_map(self, official_keys: Sequence[str]) -> dict[str, str]:
        """Official state_dict key -> our key; keys with no counterpart are left out (the loader reports them)."""
        ours_to_official = {key: self._official_key(key) for key in self.state_dict()}
        official_to_ours = {official: ours for ours, official in ours_to_official.items()}
        return {key: official_to_ours[key] for key in official_keys if key in official_to_ours}

    def _official_key(self, key: str) -> str:
        names = self.official_names
        parts = key.split(".")
        if parts[0] == "head":
            return key
        layer = "conv" if parts[-2] == "0" else "bn"
        if parts[0] == "embeds":
            stage = int(parts[1])
            if parts[2] == "shortcut":
                name = "proj_res"
            else:
                name = (names.stem if stage == 0 else names.embed)[int(parts[3])]
            return f"patch_embed{stage + 1}.{name}_{layer}.{parts[-1]}"
        stage, index, part, branch = int(parts[1]), parts[2], parts[3], parts[4]
        prefix = f"stage{stage + 1}.{index}"
        if part == "mlp":
            return f"{prefix}.mlp.{names.mlp[int(branch[-1]) - 1]}_{layer}.{parts[-1]}"
        attn = self.stages[stage][int(index)].attn
        attn_name = names.ssa if isinstance(attn, SpikingSelfAttention) else names.token_attn
        return f"{prefix}.{attn_name}.{branch}_{layer}.{parts[-1]}"


class QKFormer(HierarchicalSpikingTransformer):
    """QKFormer: Q-K token attention in all stages but the last, SSA in the last (thresholds 0.5).

    Switches: ``official_quirks`` (default True) sets ``ssa_proj_over_tb`` unless that is given explicitly.
    """

    def __init__(self, T: int = 4, num_classes: int = 10, in_channels: int = 3, input_kind: str = "static",
                 widths: Sequence[int] = (96, 192, 384), depths: Sequence[int] = (1, 1, 2), heads: int = 8,
                 mlp_ratio: float = 4.0, stem: str = "cifar", embed_pool: str = "second",
                 official_quirks: bool = True, ssa_proj_over_tb: bool | None = None) -> None:
        proj_over_tb = official_quirks if ssa_proj_over_tb is None else bool(ssa_proj_over_tb)

        def make_attention(is_last: bool, width: int) -> nn.Module:
            if is_last:
                return SpikingSelfAttention(width, heads, 0.5, proj_over_tb)
            return qk_token_attention(width, heads)

        super().__init__(T=T, num_classes=num_classes, in_channels=in_channels, input_kind=input_kind,
                         widths=widths, depths=depths, mlp_ratio=mlp_ratio, stem=stem, embed_pool=embed_pool,
                         make_attention=make_attention, official_quirks=official_quirks)
        self.ssa_proj_over_tb = proj_over_tb


def _qkformer_cifar(dataset: str, num_classes: int, params: int, top1: float) -> None:
    card = ModelCard(
        name=f"qkformer_4_384.{dataset}", family="qkformer", paper=QKFORMER_PAPER, table="table2_small",
        row="QKFormer", dataset=dataset, input_shape=(3, 32, 32), T=4, num_classes=num_classes,
        recipe="qkformer_cifar", claimed_params_m=6.74, claimed_top1=top1, code_params=params,
        official_code=f"{QKFORMER_REPO}:{dataset}/model.py",
        notes=("HST-4-384: stage widths 96/192/384, blocks 1 TQKA + 1 TQKA + 2 SSA, 8 heads (hard-coded), "
               f"mlp 4, T 4; {MSVIT_PAPER_TABLES}."))
    register_model(card, partial(QKFormer, num_classes=num_classes))


def _qkformer_dvs(dataset: str, num_classes: int, mlp_ratio: float, params: int, top1: float, note: str) -> None:
    card = ModelCard(
        name=f"qkformer_2_256.{dataset}", family="qkformer", paper=QKFORMER_PAPER, table="table2_small",
        row="QKFormer", dataset=dataset, input_shape=(2, 128, 128), T=16, num_classes=num_classes,
        recipe=f"qkformer_{dataset}", claimed_params_m=1.50, claimed_top1=top1, code_params=params,
        official_code=f"{QKFORMER_REPO}:{'cifar10-dvs' if dataset == 'cifar10dvs' else 'dvs128-gesture'}/model.py",
        notes=("HST-2-256: DVS stem to 128 (/8), 1 TQKA block at 128, 1 SSA block at 256, 16 heads "
               f"(hard-coded), mlp {mlp_ratio:g}, T 16, input [B,T,2,128,128]. {note} {MSVIT_PAPER_TABLES}."))
    register_model(card, partial(QKFormer, num_classes=num_classes, in_channels=2, input_kind="dvs", T=16,
                                 widths=(128, 256), depths=(1, 1), heads=16, mlp_ratio=mlp_ratio, stem="dvs"))


def _qkformer_imagenet(dim: int, heads: int, params: int, claimed: tuple[float, float, float]) -> None:
    params_m, top1, energy = claimed
    card = ModelCard(
        name=f"qkformer_10_{dim}.in1k", family="qkformer", paper=QKFORMER_PAPER, table="table1_imagenet",
        row=f"QKFormer 10-{dim}", dataset="imagenet", input_shape=(3, 224, 224), T=4, num_classes=1000,
        recipe="qkformer_in1k_768" if dim == 768 else "qkformer_in1k", claimed_params_m=params_m,
        claimed_top1=top1, claimed_energy_mj=energy, code_params=params,
        official_code=f"{QKFORMER_REPO}:imagenet/qkformer.py",
        notes=(f"HST-10-{dim}: ImageNet stem (/4), stage widths {dim // 4}/{dim // 2}/{dim}, blocks 1 + 2 TQKA + "
               f"7 SSA, {heads} heads, mlp 4, T 4 (the official builder defaults to T=1; training uses "
               f"--time_step 4); {MSVIT_PAPER_TABLES}."))
    register_model(card, partial(QKFormer, num_classes=1000, widths=(dim // 4, dim // 2, dim), depths=(1, 2, 7),
                                 heads=heads, stem="imagenet", embed_pool="first"))


_qkformer_cifar("cifar10", 10, 6_706_234, 96.08)
_qkformer_cifar("cifar100", 100, 6_740_884, 81.12)
_qkformer_dvs("cifar10dvs", 10, 1.0, 1_504_138, 84.0, "Matches the paper's 1.50M.")
_qkformer_dvs("dvs128", 11, 4.0, 1_999_371, 98.6,
              "The official Gesture script uses mlp ratio 4 (2.00M), not the paper's 1.50M (mlp 1).")
_qkformer_imagenet(384, 6, 16_473_688, (16.47, 78.80, 15.13))
_qkformer_imagenet(512, 8, 29_079_336, (29.08, 82.04, 21.99))
_qkformer_imagenet(768, 12, 64_962_760, (64.96, 84.22, 38.91))
