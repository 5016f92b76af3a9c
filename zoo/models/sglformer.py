"""SGLFormer: Spiking Global-Local-Fusion Transformer (Zhang et al., Front. Neurosci. 2024), faithful to
ZhangHanN1/SGLFormer.

A conv stem of five conv3x3-BN(-maxpool)-LIF stages (the pool acts on the BN output, before the LIF), then blocks on
a float residual stream at one token grid, all projections conv-BN-LIF:
- a local stage: ``x + Local(x)`` where ``Local(x) = y + reduce(dw(expand(y)))`` with ``y = x + dw(x)`` (depthwise
  3x3 convs, a 4x expansion); then ``x + WindowSSA(x)`` (spiking self-attention inside 2x2 groups of tokens) and
  ``x + MLP(x)``;
- global stages: ``x + SSA(x)``, ``x + MLP(x)``. Attention is Spikformer's: ``LIF_0.5((Q K^T) V / 8)`` on spikes.

Two architectures, as the official code ships them (``arch``):
- ``"hybrid"`` (CIFAR and event code): ``depths`` blocks of one local stage and two global stages (1x1 Conv2d
  projections without bias) and the spatio-temporal block (STB) head: a depthwise conv whose kernel covers all
  tokens and all time steps, BN, Linear. The STB mixes the time steps, so the model has no per-step logits.
- ``"imagenet"``: one local stage, then ``depths - 2`` token blocks (Conv1d projections, biased proj and MLP),
  tokens averaged, then the Linear on the time-averaged features.

Official quirks (``official_quirks=True``; each also switchable on its own), against the code's own description
(the paper's body text was not available for this port, so "paper" below means the module's stated intent):
- ``interleaved_windows``: the "local" attention groups tokens by ``(h mod 2, w mod 2)``: four interleaved
  sub-grids that each span the whole image, not four contiguous windows;
- ``double_residual``: the local conv block already returns its input plus the update, and the stage adds the
  input once more (``2x + ...``);
- ``ssa_proj_over_tb`` (ImageNet code): the global SSA's projection neuron runs over the flattened ``T*B`` axis
  (as in QKFormer's code, which SGLFormer's builds on);
- ``stem_lif_over_tb`` (``sglformer_ima2`` stem only: SGLFormer-8-384 and 8-512): the first stem neuron runs over
  the flattened ``T*B`` axis as if it were time, so the membrane carries from one sample to the next and a
  sample's output depends on its batch neighbours (``model.batch_dependent``, true with either ``*_over_tb``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import nn

from zoo.core import LIF, conv_bn, time_major
from zoo.models.base import SpikingClassifier
from zoo.models.qkformer import SpikingSelfAttention
from zoo.models.spikformer import SpikformerMLP, merge_heads, split_heads, trunc_normal_linears
from zoo.registry import ModelCard, register_model

Arch = Literal["hybrid", "imagenet"]
StemKind = Literal["cifar", "dvs", "ima", "ima2"]
# Per official stem: the divisor of the first width (dim // first) and which of the five stages max-pool
# (cifar*/sglformer.py, cifar10-dvs|dvs128-gesture/sglformer.py, imagenet/sglformer_ima.py, sglformer_ima2.py).
STEMS: dict[str, tuple[int, tuple[bool, ...]]] = {
    "cifar": (6, (False, False, False, True, True)),
    "dvs": (6, (False, True, True, True, True)),
    "ima": (8, (True, True, True, True, False)),
    "ima2": (8, (False, True, True, True, True)),
}
ATTN_SCALE = 0.125  # fixed in the official code whatever the head width
ATTN_THRESHOLD = 0.5
WINDOW = 2  # tokens per side of a local-attention group (official num_hw)


class ConvUnit(nn.Module):
    """conv-BN(-3x3/2 max-pool)-LIF over ``[T, B, C, H, W]``. ``lif_over_tb``: the LIF runs over the flattened
    ``T*B`` axis as if it were time (the ImageNet ``sglformer_ima2`` stem's first neuron), coupling the samples."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, groups: int = 1, pool: bool = False,
                 lif_over_tb: bool = False) -> None:
        super().__init__()
        self.conv_bn = conv_bn(cin, cout, kernel, groups=groups)
        if pool:
            self.conv_bn.append(nn.MaxPool2d(3, 2, 1))
        self.lif = LIF()
        self.lif_over_tb = lif_over_tb

    @property
    def couples_batch(self) -> bool:
        """True when the neuron runs over ``T*B``: a sample's output then depends on its batch neighbours."""
        return self.lif_over_tb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_bn(x)
        return self.lif(y.flatten(0, 1)).unflatten(0, y.shape[:2]) if self.lif_over_tb else self.lif(y)


class Stem(nn.Module):
    """Five conv3x3 stages of widths ``dim / first, dim / 4, dim / 2, dim, dim`` (floored); ``pools`` marks the
    stages that halve the grid; ``first_lif_over_tb`` see :class:`ConvUnit`."""

    def __init__(self, in_channels: int, dim: int, first: int, pools: tuple[bool, ...],
                 first_lif_over_tb: bool) -> None:
        super().__init__()
        widths = (dim // first, dim // 4, dim // 2, dim, dim)
        cins = (in_channels, *widths[:-1])
        self.stages = nn.Sequential(*(ConvUnit(cin, cout, 3, pool=p, lif_over_tb=first_lif_over_tb and i == 0)
                                      for i, (cin, cout, p) in enumerate(zip(cins, widths, pools))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)


def partition(x: torch.Tensor, n: int, interleaved: bool) -> torch.Tensor:
    """``[T, B, C, H, W]`` -> ``[T, B*n*n, C, H/n, W/n]``: n x n groups of tokens moved to the batch axis.

    ``interleaved``: group ``(i, j)`` holds the tokens with ``h mod n = i`` and ``w mod n = j`` (the official
    code); otherwise the contiguous ``H/n x W/n`` windows.
    """
    t, b, c, h, w = x.shape
    if interleaved:
        y = x.reshape(t, b, c, h // n, n, w // n, n).permute(0, 1, 4, 6, 2, 3, 5)
    else:
        y = x.reshape(t, b, c, n, h // n, n, w // n).permute(0, 1, 3, 5, 2, 4, 6)
    return y.reshape(t, b * n * n, c, h // n, w // n)


def integrate(y: torch.Tensor, n: int, interleaved: bool, shape: torch.Size) -> torch.Tensor:
    """Inverse of :func:`partition` back to ``shape``."""
    t, b, c, h, w = shape
    y = y.reshape(t, b, n, n, c, h // n, w // n)
    order = (0, 1, 4, 5, 2, 6, 3) if interleaved else (0, 1, 4, 2, 5, 3, 6)
    return y.permute(*order).reshape(shape)


class ConvSSA(nn.Module):
    """Spiking self-attention with conv-BN-LIF projections (1x1 Conv2d, no bias) on ``[T, B, C, H, W]``;
    ``window``: attend only inside the groups of :func:`partition` (the local SSA), else over all tokens."""

    def __init__(self, dim: int, heads: int, window: int | None = None, interleaved: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"SGLFormer attention width {dim} is not divisible by {heads} heads")
        self.heads, self.window, self.interleaved = heads, window, interleaved
        self.q, self.k, self.v = ConvUnit(dim, dim), ConvUnit(dim, dim), ConvUnit(dim, dim)
        self.attn_lif = LIF(v_threshold=ATTN_THRESHOLD)
        self.proj = ConvUnit(dim, dim)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (split_heads(unit(x), self.heads) for unit in (self.q, self.k, self.v))
        y = self.attn_lif((q @ k.transpose(-2, -1)) @ v * ATTN_SCALE)
        return self.proj(merge_heads(y, x.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.window is None:
            return self._attend(x)
        h, w = x.shape[-2:]
        if h % self.window or w % self.window:
            raise ValueError(f"SGLFormer local attention needs a token grid divisible by {self.window}, got {h}x{w}")
        y = self._attend(partition(x, self.window, self.interleaved))
        return integrate(y, self.window, self.interleaved, x.shape)


class ConvMLP(nn.Module):
    """``LIF(BN(conv(LIF(BN(conv(x))))))`` with 1x1 Conv2d (no bias), hidden width ``mlp_ratio * dim``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = ConvUnit(dim, hidden), ConvUnit(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class LocalConv(nn.Module):
    """``y = x + DW(x)``, then ``y + reduce(DW(expand(y)))`` (depthwise 3x3, 4x inverted bottleneck)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw = ConvUnit(dim, dim, 3, groups=dim)
        self.expand = ConvUnit(dim, 4 * dim)
        self.dw_hidden = ConvUnit(4 * dim, 4 * dim, 3, groups=4 * dim)
        self.reduce = ConvUnit(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dw(x)
        return x + self.reduce(self.dw_hidden(self.expand(x)))


class LocalStage(nn.Module):
    """``x + LocalConv(x)`` (``2x + ...`` with ``double_residual``), ``x + WindowSSA(x)``, ``x + MLP(x)``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, interleaved: bool, double_residual: bool) -> None:
        super().__init__()
        self.double_residual = double_residual
        self.local = LocalConv(dim)
        self.attn = ConvSSA(dim, heads, WINDOW, interleaved)
        self.mlp = ConvMLP(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.local(x) if self.double_residual else self.local(x)
        x = x + self.attn(x)
        return x + self.mlp(x)


class GlobalStage(nn.Module):
    """``x + SSA(x)``, ``x + MLP(x)`` with 1x1 Conv2d projections (the CIFAR/event code's global stage)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.attn = ConvSSA(dim, heads)
        self.mlp = ConvMLP(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class TokenBlock(nn.Module):
    """The ImageNet code's global block on the flattened tokens: ``x + SSA(x)`` (QKFormer's SSA: Conv1d
    projections, the proj neuron over ``T*B`` with ``proj_over_tb``), ``x + MLP(x)`` (biased Conv1d MLP)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, proj_over_tb: bool) -> None:
        super().__init__()
        self.attn = SpikingSelfAttention(dim, heads, ATTN_THRESHOLD, proj_over_tb, ATTN_SCALE)
        self.mlp = SpikformerMLP(dim, dim * mlp_ratio, "conv1d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class SGLFormer(SpikingClassifier):
    """SGLFormer (see the module docstring). ``depths``: the official ``depths`` argument (hybrid: blocks of one
    local and two global stages; imagenet: one local stage and ``depths - 2`` global blocks). ``stem``: which
    official stem (:data:`STEMS`). ``img_size``: the input side the STB head's kernel is built for (hybrid only).
    ``stem_lif_over_tb`` (default: ``official_quirks`` for the ``ima2`` stem, else False): see :class:`ConvUnit`;
    ``ssa_proj_over_tb`` (default ``official_quirks``; imagenet only): see :class:`TokenBlock`.
    """

    def __init__(self, dim: int, depths: int, heads: int, num_classes: int, T: int, arch: Arch = "hybrid",
                 stem: StemKind = "cifar", img_size: int = 32, input_kind: Literal["static", "dvs"] = "static",
                 mlp_ratio: int = 4, official_quirks: bool = True, interleaved_windows: bool | None = None,
                 double_residual: bool | None = None, stem_lif_over_tb: bool | None = None,
                 ssa_proj_over_tb: bool | None = None) -> None:
        if arch not in ("hybrid", "imagenet"):
            raise ValueError(f"unknown SGLFormer arch {arch!r}; expected 'hybrid' or 'imagenet'")
        if stem not in STEMS:
            raise ValueError(f"unknown SGLFormer stem {stem!r}; expected one of {sorted(STEMS)}")
        if depths < (2 if arch == "imagenet" else 1):
            raise ValueError(f"SGLFormer arch {arch!r} needs depths >= {2 if arch == 'imagenet' else 1}, got {depths}")
        super().__init__(T=T, num_classes=num_classes, in_channels=2 if input_kind == "dvs" else 3,
                         input_kind=input_kind)
        self.arch: Arch = arch
        first, pools = STEMS[stem]
        self.downsample = 2 ** sum(pools)
        interleaved = official_quirks if interleaved_windows is None else interleaved_windows
        doubled = official_quirks if double_residual is None else double_residual
        over_tb = (official_quirks and stem == "ima2") if stem_lif_over_tb is None else stem_lif_over_tb
        self.stem = Stem(self.in_channels, dim, first, pools, over_tb)
        local = partial(LocalStage, dim, heads, mlp_ratio, interleaved, doubled)
        if arch == "hybrid":
            stages = [stage for _ in range(depths) for stage in
                      (local(), GlobalStage(dim, heads, mlp_ratio), GlobalStage(dim, heads, mlp_ratio))]
        else:
            proj_over_tb = official_quirks if ssa_proj_over_tb is None else ssa_proj_over_tb
            stages = [local(), *(TokenBlock(dim, heads, mlp_ratio, proj_over_tb) for _ in range(depths - 2))]
        self.blocks = nn.Sequential(*stages)
        self.grid = img_size // self.downsample
        if arch == "hybrid":
            self.stb_conv = nn.Conv2d(dim, dim, (self.grid ** 2, T), groups=dim)
            self.stb_bn = nn.BatchNorm2d(dim)
        self.head = nn.Linear(dim, num_classes)
        self.apply(trunc_normal_linears)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]`` input -> ``[T, B, dim, h, w]`` output of the last block."""
        x = self.stem(x)
        if self.arch == "hybrid" and tuple(x.shape[-2:]) != (self.grid, self.grid):
            side = self.grid * self.downsample
            raise ValueError(f"SGLFormer's STB head was built for a {self.grid}x{self.grid} token grid ({side}x{side} "
                             f"input), got {x.shape[-2]}x{x.shape[-1]} from a {x.shape[-2] * self.downsample}x"
                             f"{x.shape[-1] * self.downsample} input; build with img_size=<input side>")
        return self.blocks(x)

    def _stb(self, feats: torch.Tensor) -> torch.Tensor:
        """The spatio-temporal head: ``[T, B, C, h, w]`` -> ``[B, C]`` (one depthwise kernel over tokens x time)."""
        return self.stb_bn(self.stb_conv(feats.flatten(3).permute(1, 2, 3, 0))).flatten(1)

    def _no_steps(self) -> ValueError:
        return ValueError("SGLFormer's spatio-temporal (STB) head mixes the time steps: it has no per-step logits "
                          "(use a loss on the averaged logits, e.g. train.loss: ce)")

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        if self.arch == "hybrid":
            raise self._no_steps()
        return self.head(self.features(x).flatten(3).mean(3))

    def forward(self, x: torch.Tensor, per_step: bool = False) -> torch.Tensor:
        x = time_major(x, self.T, self.input_kind, self.in_channels, type(self).__name__)
        if self.arch == "hybrid":
            if per_step:
                raise self._no_steps()
            return self.head(self._stb(self.features(x)))
        if per_step:
            return self.forward_steps(x)
        return self.head(self.features(x).flatten(3).mean(3).mean(0))  # the official order: mean over T, then Linear

    def official_key_map(self, official_keys: Iterable[str]) -> dict[str, str | None]:
        """Official keys (CIFAR/event ``vit_snn``, ImageNet ``sglformer_ima``/``sglformer_ima2``) -> ours; the
        ImageNet blocks' unused LayerNorms map to None."""
        rules = _HYBRID_RULES if self.arch == "hybrid" else _IMAGENET_RULES
        mapped: dict[str, str | None] = {}
        for key in official_keys:
            for pattern, target in rules:
                match = re.fullmatch(pattern, key)
                if match:
                    mapped[key] = target(match)
                    break
        return mapped


# ----------------------------------------------------------------------------------------- official keys

KeyRule = tuple[str, Callable[[re.Match], "str | None"]]
_LOCAL = {"conv": "dw", "conv1x1_1": "expand", "dwconv3x3": "dw_hidden", "conv1x1_2": "reduce"}


def _unit(prefix: str, rest: str) -> str:
    """An official conv unit's ``conv1x1.weight``/``conv3x3.weight``/``bn.*`` under ``prefix`` -> our ConvUnit key."""
    return f"{prefix}.conv_bn.1.{rest[3:]}" if rest.startswith("bn.") else f"{prefix}.conv_bn.0.{rest.split('.')[-1]}"


def _local_rules(conv: str, ssa: str, mlp: str, index: Callable[[re.Match], int]) -> list[KeyRule]:
    """Rules of a local stage whose official conv block, SSA and MLP match ``conv``, ``ssa``, ``mlp`` (each with the
    block index as its one group)."""
    return [
        (rf"{conv}\.(conv|conv1x1_1|dwconv3x3|conv1x1_2)\.(.+)",
         lambda m: _unit(f"blocks.{index(m)}.local.{_LOCAL[m[2]]}", m[3])),
        (rf"{ssa}\.(q|k|v|proj)_conv\.(.+)", lambda m: _unit(f"blocks.{index(m)}.attn.{m[2]}", m[3])),
        (rf"{mlp}\.mlp([12])\.(.+)", lambda m: _unit(f"blocks.{index(m)}.mlp.fc{m[2]}", m[3])),
    ]


_HYBRID_RULES = [
    (r"stem\.conv\.(.+)", lambda m: _unit("stem.stages.0", m[1])),
    (r"tokenizer\.conv([1-4])\.(.+)", lambda m: _unit(f"stem.stages.{m[1]}", m[2])),
    *_local_rules(r"blocks\.(\d+)\.loc", r"blocks\.(\d+)\.ssa1", r"blocks\.(\d+)\.mlp1", lambda m: 3 * int(m[1])),
    (r"blocks\.(\d+)\.ssa([23])\.(q|k|v|proj)_conv\.(.+)",
     lambda m: _unit(f"blocks.{3 * int(m[1]) + int(m[2]) - 1}.attn.{m[3]}", m[4])),
    (r"blocks\.(\d+)\.mlp([23])\.mlp([12])\.(.+)",
     lambda m: _unit(f"blocks.{3 * int(m[1]) + int(m[2]) - 1}.mlp.fc{m[3]}", m[4])),
    (r"full_size_conv\.(weight|bias)", lambda m: f"stb_conv.{m[1]}"),
    (r"bn\.(.+)", lambda m: f"stb_bn.{m[1]}"),
    (r"head\.(weight|bias)", lambda m: f"head.{m[1]}"),
]

_IMAGENET_RULES = [
    (r"patch_embed\.proj(\d?)_(conv|bn)\.(.+)",
     lambda m: f"stem.stages.{int(m[1] or 0)}.conv_bn.{0 if m[2] == 'conv' else 1}.{m[3]}"),
    *_local_rules(r"localblock\.(\d+)\.local1", r"localblock\.(\d+)\.local2_SSA", r"localblock\.(\d+)\.local2_MLP",
                  lambda m: int(m[1])),
    (r"blocks\.(\d+)\.attn\.(q|k|v|proj)_(conv|bn)\.(.+)",
     lambda m: f"blocks.{int(m[1]) + 1}.attn.{m[2]}.conv_bn.{0 if m[3] == 'conv' else 1}.{m[4]}"),
    (r"blocks\.(\d+)\.mlp\.(fc[12])_(conv|bn)\.(.+)",
     lambda m: f"blocks.{int(m[1]) + 1}.mlp.{m[2]}.body.{0 if m[3] == 'conv' else 1}.{m[4]}"),
    (r"blocks\.\d+\.norm[12]\.(weight|bias)", lambda m: None),
    (r"head\.(weight|bias)", lambda m: f"head.{m[1]}"),
]


# ----------------------------------------------------------------------------------------- registry

PAPER = "SGLFormer: Spiking Global-Local-Fusion Transformer with high performance (Zhang et al., Front. Neurosci. 2024)"
REPO = "ZhangHanN1/SGLFormer@4821b13"


@dataclass(frozen=True)
class _Config:
    name: str
    arch: Arch
    dim: int
    depths: int
    heads: int
    stem: StemKind
    T: int
    img_size: int
    input_kind: Literal["static", "dvs"]
    num_classes: int
    dataset: str
    recipe: str
    row: str
    claimed_params_m: float
    claimed_top1: float
    code_params: int
    code_path: str
    notes: str


_QUIRKS = (" Official quirks (official_quirks=True, each switchable): the local attention's 2x2 groups are "
           "interleaved sub-grids (interleaved_windows), the local conv block's input is added twice "
           "(double_residual).")
_CLAIMS = "Claims: the official README's result tables (ZhangHanN1/SGLFormer@4821b13), which restate the paper's."
_CIFAR = ("cifar{n}/cifar{n}.yml: dim 384, 16 heads, layer 1 (one block: a local stage and two global "
          "stages; the '4' of the paper's name is not the code's layer count), T 4, 32x32. " + _CLAIMS + _QUIRKS)
_DVS = ("{folder}/sglformer.py defaults (dim 256, 16 heads, depths 1) at 128x128, T {T} (train.py --T); the STB "
        "kernel spans T, so the count depends on T. The README prints {claim}M, the shipped code builds {code}: "
        "the claimed count does not match the code (the '3' of the name is not its layer count either). "
        + _CLAIMS + _QUIRKS)
_IN1K = ("imagenet/models_vit.py:{fn} ({star}); the official count {official:,} includes the blocks' unused "
         "LayerNorms ({unused:,}), which are not built here. " + _CLAIMS + _QUIRKS[:-1] + "; the global SSA's "
         "projection neuron runs over the flattened T*B axis (ssa_proj_over_tb), as in QKFormer's code.")
_STAR = "the README's '*' model: the stem pools at its first four stages"
_PLAIN = ("the stem pools at its last four stages, the last pool after the fifth conv; third quirk: its first "
          "neuron runs over the flattened T*B axis (stem_lif_over_tb), so samples of a batch are coupled")

CONFIGS = [
    _Config("sglformer_4_384.cifar10", "hybrid", 384, 1, 16, "cifar", 4, 32, "static", 10, "cifar10",
            "sglformer_cifar10", "SGLFormer-4-384", 8.85, 96.76, 8_852_874, "cifar10/sglformer.py",
            _CIFAR.format(n="10")),
    _Config("sglformer_4_384.cifar100", "hybrid", 384, 1, 16, "cifar", 4, 32, "static", 100, "cifar100",
            "sglformer_cifar100", "SGLFormer-4-384", 8.88, 82.26, 8_887_524, "cifar100/sglformer.py",
            _CIFAR.format(n="100")),
    _Config("sglformer_3_256.cifar10dvs", "hybrid", 256, 1, 16, "dvs", 10, 128, "dvs", 10, "cifar10dvs",
            "sglformer_cifar10dvs", "SGLFormer-3-256 (T=10)", 2.48, 82.9, 4_066_130, "cifar10-dvs/sglformer.py",
            _DVS.format(folder="cifar10-dvs", T=10, claim="2.48", code="4,066,130")),
    _Config("sglformer_3_256_t16.cifar10dvs", "hybrid", 256, 1, 16, "dvs", 16, 128, "dvs", 10, "cifar10dvs",
            "sglformer_cifar10dvs", "SGLFormer-3-256 (T=16)", 2.58, 82.6, 4_164_434, "cifar10-dvs/sglformer.py",
            _DVS.format(folder="cifar10-dvs", T=16, claim="2.58", code="4,164,434")),
    _Config("sglformer_3_256.dvs128", "hybrid", 256, 1, 16, "dvs", 10, 128, "dvs", 11, "dvs128",
            "sglformer_dvs128", "SGLFormer-3-256 (T=10)", 2.08, 97.2, 4_066_387, "dvs128-gesture/sglformer.py",
            _DVS.format(folder="dvs128-gesture", T=10, claim="2.08", code="4,066,387")),
    _Config("sglformer_3_256_t16.dvs128", "hybrid", 256, 1, 16, "dvs", 16, 128, "dvs", 11, "dvs128",
            "sglformer_dvs128", "SGLFormer-3-256 (T=16)", 2.17, 98.6, 4_164_691, "dvs128-gesture/sglformer.py",
            _DVS.format(folder="dvs128-gesture", T=16, claim="2.17", code="4,164,691")),
    _Config("sglformer_8_384.in1k", "imagenet", 384, 8, 6, "ima2", 4, 224, "static", 1000, "imagenet",
            "sglformer_in1k", "SGLFormer-8-384", 16.25, 79.44, 16_239_640, "imagenet/sglformer_ima2.py",
            _IN1K.format(fn="sglformer_ima2_8_384", star=_PLAIN, official=16_248_856, unused=9_216)),
    _Config("sglformer_8_512.in1k", "imagenet", 512, 8, 8, "ima2", 4, 224, "static", 1000, "imagenet",
            "sglformer_in1k", "SGLFormer-8-512", 28.67, 82.28, 28_658_728, "imagenet/sglformer_ima2.py",
            _IN1K.format(fn="sglformer_ima2_8_512", star=_PLAIN, official=28_671_016, unused=12_288)),
    _Config("sglformer_8_512star.in1k", "imagenet", 512, 8, 8, "ima", 4, 224, "static", 1000, "imagenet",
            "sglformer_in1k", "SGLFormer-8-512*", 28.67, 81.93, 28_658_728, "imagenet/sglformer_ima.py",
            _IN1K.format(fn="sglformer_ima_8_512", star=_STAR, official=28_671_016, unused=12_288)),
    _Config("sglformer_8_768star.in1k", "imagenet", 768, 8, 12, "ima", 4, 224, "static", 1000, "imagenet",
            "sglformer_in1k", "SGLFormer-8-768*", 64.02, 83.73, 64_006_216, "imagenet/sglformer_ima.py",
            _IN1K.format(fn="sglformer_ima_8_768", star=_STAR, official=64_024_648, unused=18_432)),
]


def _register(cfg: _Config) -> None:
    card = ModelCard(
        name=cfg.name, family="sglformer", paper=PAPER, table="sglformer", row=cfg.row, dataset=cfg.dataset,
        input_shape=(2 if cfg.input_kind == "dvs" else 3, cfg.img_size, cfg.img_size), T=cfg.T,
        num_classes=cfg.num_classes, recipe=cfg.recipe, claimed_params_m=cfg.claimed_params_m,
        claimed_top1=cfg.claimed_top1, code_params=cfg.code_params, official_code=f"{REPO}:{cfg.code_path}",
        notes=cfg.notes,
        extra={"arch": cfg.arch, "dim": cfg.dim, "depths": cfg.depths, "heads": cfg.heads, "stem": cfg.stem},
    )
    register_model(card, partial(SGLFormer, dim=cfg.dim, depths=cfg.depths, heads=cfg.heads,
                                 num_classes=cfg.num_classes, T=cfg.T, arch=cfg.arch, stem=cfg.stem,
                                 img_size=cfg.img_size, input_kind=cfg.input_kind))


for _cfg in CONFIGS:
    _register(_cfg)
