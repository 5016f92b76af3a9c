"""Spiking Wavelet Transformer (SWformer; Fang et al., ECCV 2024), faithful to bic-L/Spiking-Wavelet-Transformer.

An attention-free spiking transformer: a conv stem (four conv-BN stages, LIFs, max pools, a conv "relative
position" residual), then blocks ``x + FATM(x)``, ``x + MLP(x)`` on a float residual stream at one token grid.

FATM (frequency-aware token mixer), on spikes ``S = LIF(x)``:
- wavelet branch: a 2-D Haar transform ``H_h (TernaryIF(S H_w^T))``, BN, LIF, a block-diagonal learnt mixing of
  channels (``FL_blocks`` blocks of ``dim / FL_blocks``), BN, the inverse transform
  ``H_h^T (TernaryIF(TernaryIF(.) H_w))``, BN. The ternary neurons (+1 / 0 / -1) are ``zoo.core.TernaryIF``.
- two conv branches, a 1x1 and a 3x3 conv of ``dim / FL_blocks`` channels, each shared across the ``FL_blocks``
  channel groups (applied on a ``T*B*FL_blocks`` batch), each with a BN over all ``dim`` channels.
The three are summed (``variant="spatial"``, ImageNet and CIFAR code); the event code instead max-pools ("erodes",
3x3 stride 1) the spikes and the wavelet output, feeds the conv branches the eroded wavelet output, and sums only
the two conv branches (``variant="eroded"``).

Heads differ per official code base (``head``): ImageNet spikes the pooled features with a LIF over T, applies the
Linear per step and averages (``"spike"``); CIFAR averages the pooled features over T before the Linear
(``"mean"``); the event code applies the Linear per step, averaged by its training script (``"per_step"``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import nn

from zoo.core import LIF, MaxPool, SeqFlat, SwapRule, TernaryIF, conv_bn, time_major
from zoo.models.base import SpikingClassifier
from zoo.registry import ModelCard, register_model

MixerVariant = Literal["spatial", "eroded"]
HeadOrder = Literal["spike", "mean", "per_step"]
MLP_RATIO = 4


@functools.cache
def haar_matrix(n: int) -> torch.Tensor:
    """The orthonormal ``n x n`` Haar matrix (rows: scaling, then wavelets coarse to fine), float32 as the official
    code builds it (integer rows divided by their float32 norms). ``n`` must be a power of two."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"the Haar matrix needs a power-of-two size, got {n}")
    rows = torch.ones(1, 1)
    while rows.shape[0] < n:
        rows = torch.cat([torch.kron(rows, torch.tensor([[1.0, 1.0]])),
                          torch.kron(torch.eye(rows.shape[0]), torch.tensor([[1.0, -1.0]]))])
    return rows / torch.linalg.norm(rows, dim=1, keepdim=True)


class Haar2D(nn.Module):
    """The spiking 2-D Haar transform on ``[T, B, C, h, w]`` given the row and column matrices ``H_h``, ``H_w``.

    Forward: ``H_h @ TernaryIF(x @ H_w^T)``; inverse: ``H_h^T @ TernaryIF(TernaryIF(x) @ H_w)``.
    """

    def __init__(self, inverse: bool, v_threshold: float) -> None:
        super().__init__()
        self.inverse = inverse
        self.row_neuron = TernaryIF(v_threshold) if inverse else None
        self.col_neuron = TernaryIF(v_threshold)

    def forward(self, x: torch.Tensor, h_rows: torch.Tensor, h_cols: torch.Tensor) -> torch.Tensor:
        if self.inverse:
            return h_rows.T @ self.col_neuron(self.row_neuron(x) @ h_cols)
        return h_rows @ self.col_neuron(x @ h_cols.T)


class FATM(nn.Module):
    """Frequency-aware token mixer (see the module docstring) on ``[T, B, dim, h, w]``; returns the mixer output.

    ``cached_haar`` (the official behaviour): the Haar matrix is built for the grid of the first call (square,
    from its height) and kept; a later call at another grid is rejected (the official code would fail inside a
    matmul). Without it, the matrices follow every input's grid (non-square grids allowed). Either way the matrix
    takes the input's device and dtype (the official cache also keeps the first call's device, and float32).
    """

    def __init__(self, dim: int, FL_blocks: int, haar_vth: float, variant: MixerVariant, cached_haar: bool) -> None:
        super().__init__()
        if dim % FL_blocks:
            raise ValueError(f"FATM width {dim} is not divisible by FL_blocks={FL_blocks}")
        if variant not in ("spatial", "eroded"):
            raise ValueError(f"unknown FATM variant {variant!r}; expected 'spatial' or 'eroded'")
        self.num_blocks, self.block_size = FL_blocks, dim // FL_blocks
        self.cached_haar = cached_haar
        self.built_grid: int | None = None
        self.x_neuron = LIF()
        self.haar_forward = Haar2D(False, haar_vth)
        self.haar_forward_bn = SeqFlat(nn.BatchNorm2d(dim))
        self.haar_neuron = LIF()
        self.haar_weight = nn.Parameter(0.02 * torch.randn(FL_blocks, self.block_size, self.block_size))
        self.haar_bn = nn.BatchNorm2d(dim)
        self.haar_inverse = Haar2D(True, haar_vth)
        self.haar_inverse_bn = SeqFlat(nn.BatchNorm2d(dim))
        self.conv1 = nn.Conv2d(self.block_size, self.block_size, 1)
        self.conv2 = nn.Conv2d(self.block_size, self.block_size, 3, padding=1)
        self.conv1_bn = nn.BatchNorm2d(dim)
        self.conv2_bn = nn.BatchNorm2d(dim)
        self.erode = nn.MaxPool3d((1, 3, 3), 1, (0, 1, 1)) if variant == "eroded" else None

    def _matrices(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2:]
        if self.cached_haar:
            if self.built_grid is None:
                self.built_grid = h
            if (h, w) != (self.built_grid, self.built_grid):
                raise ValueError(f"FATM's Haar matrix was built for a {self.built_grid}x{self.built_grid} token grid "
                                 f"(official lazy cache), got {h}x{w}; build with official_quirks=False to follow "
                                 f"the input")
            w = h
        return haar_matrix(h).to(x), haar_matrix(w).to(x)

    def _wavelet(self, s: torch.Tensor) -> torch.Tensor:
        t, b, c, h, w = s.shape
        h_rows, h_cols = self._matrices(s)
        haar = self.haar_neuron(self.haar_forward_bn(self.haar_forward(s, h_rows, h_cols)))
        haar = haar.reshape(t * b, self.num_blocks, self.block_size, h, w).permute(0, 3, 4, 1, 2)
        haar = torch.einsum("...bd,bdk->...bk", haar, self.haar_weight)
        # contiguous: BN on the channels-last view reduces in another order (train statistics differ in the last bit)
        haar = self.haar_bn(haar.reshape(t * b, h, w, c).permute(0, 3, 1, 2).contiguous()).reshape(t, b, c, h, w)
        return self.haar_inverse_bn(self.haar_inverse(haar, h_rows, h_cols))

    def _shared_conv(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
        t, b, c, h, w = x.shape
        y = conv(x.reshape(t * b * self.num_blocks, self.block_size, h, w))
        return bn(y.reshape(t * b, c, h, w)).reshape(t, b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.x_neuron(x)
        if self.erode is not None:
            s = self.erode(s)
        haar = self._wavelet(s)
        if self.erode is not None:
            src = self.erode(haar)
            return self._shared_conv(self.conv1, self.conv1_bn, src) + self._shared_conv(self.conv2, self.conv2_bn, src)
        return haar + self._shared_conv(self.conv1, self.conv1_bn, s) + self._shared_conv(self.conv2, self.conv2_bn, s)


class MLP(nn.Module):
    """``BN(fc2(LIF(BN(fc1(LIF(x))))))`` with biased 1x1 convs, hidden width ``4 * dim``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1_lif, self.fc1 = LIF(), conv_bn(dim, dim * MLP_RATIO, 1, bias=True)
        self.fc2_lif, self.fc2 = LIF(), conv_bn(dim * MLP_RATIO, dim, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc2_lif(self.fc1(self.fc1_lif(x))))


class Block(nn.Module):
    """``x + FATM(x)``, then ``x + MLP(x)``."""

    def __init__(self, dim: int, FL_blocks: int, haar_vth: float, variant: MixerVariant, cached_haar: bool) -> None:
        super().__init__()
        self.mixer = FATM(dim, FL_blocks, haar_vth, variant, cached_haar)
        self.mlp = MLP(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(x)
        return x + self.mlp(x)


class Stem(nn.Module):
    """The official SPS: conv-BN-LIF x3 and conv-BN (widths dim/8, /4, /2, 1), each optionally followed by a
    3x3/2 max pool (``pools``; the last pool comes before the LIF), then ``x + BN(conv3x3(LIF(x)))``."""

    def __init__(self, in_channels: int, dim: int, pools: tuple[bool, bool, bool, bool]) -> None:
        super().__init__()
        widths = [in_channels, dim // 8, dim // 4, dim // 2, dim]
        self.convs = nn.ModuleList(conv_bn(widths[i], widths[i + 1], 3) for i in range(4))
        self.lifs = nn.ModuleList(LIF() for _ in range(4))
        self.pools = nn.ModuleList(MaxPool() if p else nn.Identity() for p in pools)
        self.rpe = conv_bn(dim, dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(3):
            x = self.pools[i](self.lifs[i](self.convs[i](x)))
        x = self.pools[3](self.convs[3](x))
        return x + self.rpe(self.lifs[3](x))


class SWformer(SpikingClassifier):
    """SWformer-``depths``-``dim``: stem, ``depths`` blocks, global average pool, head (see the module docstring).

    ``pools``: which stem stages max-pool (ImageNet and event code: all four, 1/16 of the input; CIFAR: the last
    two, 1/4). The token grid must be a power of two (the Haar matrix): ImageNet runs at 256x256, not 224.
    ``official_quirks`` sets ``cached_haar`` (see :class:`FATM`).
    """

    def __init__(self, dim: int, depths: int, num_classes: int, T: int, FL_blocks: int = 4, haar_vth: float = 1.0,
                 pools: tuple[bool, bool, bool, bool] = (True, True, True, True), variant: MixerVariant = "spatial",
                 head: HeadOrder = "spike", input_kind: Literal["static", "dvs"] = "static",
                 official_quirks: bool = True, cached_haar: bool | None = None) -> None:
        if head not in ("spike", "mean", "per_step"):
            raise ValueError(f"unknown head order {head!r}; expected 'spike', 'mean' or 'per_step'")
        if dim % 8:
            raise ValueError(f"SWformer width {dim} must be divisible by 8 (the stem's first stage is dim/8 wide)")
        super().__init__(T=T, num_classes=num_classes, in_channels=2 if input_kind == "dvs" else 3,
                         input_kind=input_kind)
        self.head_order: HeadOrder = head
        self.downsample = 2 ** sum(bool(p) for p in pools)
        cached = official_quirks if cached_haar is None else cached_haar
        self.stem = Stem(self.in_channels, dim, tuple(bool(p) for p in pools))
        self.blocks = nn.ModuleList(Block(dim, FL_blocks, haar_vth, variant, cached) for _ in range(depths))
        self.head_lif = LIF() if head == "spike" else None
        self.head = nn.Linear(dim, num_classes)
        self.apply(partial(_official_init, trunc_linear=head != "spike"))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]`` input -> ``[T, B, dim]`` pooled features."""
        x = self.stem(x)
        h, w = x.shape[-2:]
        if h & (h - 1) or w & (w - 1):
            raise ValueError(f"SWformer needs a power-of-two token grid for its Haar transform, got {h}x{w} from a "
                             f"{h * self.downsample}x{w * self.downsample} input (the stem divides by "
                             f"{self.downsample}); use e.g. {self.downsample * 2 ** h.bit_length()}")
        for block in self.blocks:
            x = block(x)
        return x.flatten(3).mean(3)

    def _step_logits(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_lif(feats) if self.head_lif is not None else feats)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        return self._step_logits(self.features(x))

    def forward(self, x: torch.Tensor, per_step: bool = False) -> torch.Tensor:
        feats = self.features(time_major(x, self.T, self.input_kind, self.in_channels, type(self).__name__))
        if self.head_order == "mean" and not per_step:
            return self.head(feats.mean(0))  # the CIFAR code's order: average over T, then the Linear
        steps = self._step_logits(feats)
        return steps if per_step else steps.mean(0)

    def official_key_map(self, official_keys: Iterable[str]) -> dict[str, str | None]:
        """Official keys (ImageNet ``block.i.attn``, CIFAR/event ``block.i.mixer``) -> ours."""
        mapped: dict[str, str | None] = {}
        for key in official_keys:
            for pattern, template in _KEY_RULES:
                match = re.fullmatch(pattern, key)
                if match:
                    mapped[key] = match.expand(template)
                    break
        return mapped


_KEY_RULES = [
    (r"patch_embed\.proj_conv\.weight", "stem.convs.0.0.weight"),
    (r"patch_embed\.proj_conv([123])\.weight", r"stem.convs.\1.0.weight"),
    (r"patch_embed\.proj_bn\.(.+)", r"stem.convs.0.1.\1"),
    (r"patch_embed\.proj_bn([123])\.(.+)", r"stem.convs.\1.1.\2"),
    (r"patch_embed\.rpe_conv\.weight", "stem.rpe.0.weight"),
    (r"patch_embed\.rpe_bn\.(.+)", r"stem.rpe.1.\1"),
    (r"block\.(\d+)\.(?:attn|mixer)\.(haar_weight|conv[12]\.(?:weight|bias))", r"blocks.\1.mixer.\2"),
    (r"block\.(\d+)\.(?:attn|mixer)\.(haar_forward_bn|haar_inverse_bn)\.(.+)", r"blocks.\1.mixer.\2.0.\3"),
    (r"block\.(\d+)\.(?:attn|mixer)\.(?:haar_bn|haar_multiply_bn)\.(.+)", r"blocks.\1.mixer.haar_bn.\2"),
    (r"block\.(\d+)\.(?:attn|mixer)\.(conv[12]_bn)\.(.+)", r"blocks.\1.mixer.\2.\3"),
    (r"block\.(\d+)\.mlp\.(fc[12])_conv\.(.+)", r"blocks.\1.mlp.\2.0.\3"),
    (r"block\.(\d+)\.mlp\.(fc[12])_bn\.(.+)", r"blocks.\1.mlp.\2.1.\3"),
    (r"head\.(weight|bias)", r"head.\1"),
]


def _official_init(module: nn.Module, trunc_linear: bool) -> None:
    """The official inits: ImageNet code trunc_normal(0.02) convs with zero bias (Linear left at PyTorch's default);
    CIFAR and event code trunc_normal(0.02) Linear with zero bias (convs left at default). BN: weight 1, bias 0."""
    kind = nn.Linear if trunc_linear else nn.Conv2d
    if isinstance(module, kind):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# ----------------------------------------------------------------------------------------- registry

PAPER = "Spiking Wavelet Transformer (Fang, Wang et al., ECCV 2024)"
REPO = "bic-L/Spiking-Wavelet-Transformer@da8c644"
ALL_POOLS, LATE_POOLS = (True, True, True, True), (False, False, True, True)


@dataclass(frozen=True)
class _Config:
    name: str
    dim: int
    depths: int
    FL_blocks: int
    pools: tuple[bool, bool, bool, bool]
    variant: MixerVariant
    head: HeadOrder
    T: int
    img_size: int
    input_kind: Literal["static", "dvs"]
    num_classes: int
    dataset: str
    recipe: str
    row: str
    claimed_top1: float | None
    code_params: int
    code_path: str
    notes: str


_IN1K = ("Top-1 as in the official checkpoint file names (imagenet/run.sh, README release 'checkpoints'), haar_vth "
         "1.0; {other} with haar_vth=0.5. The paper's own table is not checked (its text was not available). "
         "Input 256x256: the Haar transform needs a power-of-two token grid (224 gives 14x14).")
_UNCHECKED = "No claimed value: the paper's {what} result is not checked (its table text was not available)."
_DVS = ("Event frames at 128x128 (the official stem hard-codes the 64/32/16 feature sides), 2 polarity channels; "
        "per-step head averaged over T by the training script.")

CONFIGS = [
    _Config("swformer_6_512.in1k", 512, 6, 2, ALL_POOLS, "spatial", "spike", 4, 256, "static", 1000, "imagenet",
            "swformer_in1k_6_512", "SWformer-6-512", 74.95, 21_806_632,
            "imagenet/model/spikingwavelet.py:swformer + conf/imagenet/6_512_300E_t4.yml",
            _IN1K.format(other="74.98")),
    _Config("swformer_8_512.in1k", 512, 8, 2, ALL_POOLS, "spatial", "spike", 4, 256, "static", 1000, "imagenet",
            "swformer_in1k_8_512", "SWformer-8-512", 75.43, 27_600_424,
            "imagenet/model/spikingwavelet.py:swformer + conf/imagenet/8_512_300E_t4.yml",
            _IN1K.format(other="75.19")),
    _Config("swformer_4_384.cifar10", 384, 4, 4, LATE_POOLS, "spatial", "mean", 4, 32, "static", 10, "cifar10",
            "swformer_cifar10", "SWformer-4-384", None, 7_479_226, "cifar10-100/model.py:swformer + cifar10.yaml",
            _UNCHECKED.format(what="CIFAR-10")),
    _Config("swformer_4_384.cifar100", 384, 4, 4, LATE_POOLS, "spatial", "mean", 4, 32, "static", 100, "cifar100",
            "swformer_cifar100", "SWformer-4-384", None, 7_513_876, "cifar10-100/model.py:swformer + cifar100.yaml",
            _UNCHECKED.format(what="CIFAR-100")),
    _Config("swformer_2_256.cifar10dvs", 256, 2, 4, ALL_POOLS, "eroded", "per_step", 16, 128, "dvs", 10, "cifar10dvs",
            "swformer_cifar10dvs", "SWformer-2-256", None, 2_157_834, "event/model.py:swformer + cifar10dvs.yaml",
            _UNCHECKED.format(what="CIFAR10-DVS") + " " + _DVS),
    _Config("swformer_2_256.dvs128", 256, 2, 4, ALL_POOLS, "eroded", "per_step", 16, 128, "dvs", 11, "dvs128",
            "swformer_dvs128", "SWformer-2-256", None, 2_158_091, "event/model.py:swformer (dataset.py:Dvs128Gesture)",
            _UNCHECKED.format(what="DVS128 Gesture") + " " + _DVS + " The repository ships no DVS128 config: the "
            "CIFAR10-DVS one with 11 classes."),
]


# a neuron swap studies the LIFs; the Haar transform's ternary neurons are the transform itself
HAAR_EXEMPT = SwapRule(
    exempt=("*.haar_forward.*", "*.haar_inverse.*"),
    exempt_reason="the Haar transforms' ternary neurons (+1/0/-1, the official MultiStepNegIFNode) carry the signed "
                  "wavelet coefficients: they are part of the transform, not the neuron a swap studies")


def _register(cfg: _Config) -> None:
    card = ModelCard(
        name=cfg.name, family="swformer", paper=PAPER, table="swformer", row=cfg.row, dataset=cfg.dataset,
        input_shape=(2 if cfg.input_kind == "dvs" else 3, cfg.img_size, cfg.img_size), T=cfg.T,
        num_classes=cfg.num_classes, recipe=cfg.recipe, claimed_top1=cfg.claimed_top1, code_params=cfg.code_params,
        official_code=f"{REPO}:{cfg.code_path}", notes=cfg.notes,
        extra={"dim": cfg.dim, "depths": cfg.depths, "FL_blocks": cfg.FL_blocks, "variant": cfg.variant,
               "head": cfg.head},
        swaps=HAAR_EXEMPT,
    )
    register_model(card, partial(SWformer, dim=cfg.dim, depths=cfg.depths, num_classes=cfg.num_classes, T=cfg.T,
                                 FL_blocks=cfg.FL_blocks, pools=cfg.pools, variant=cfg.variant, head=cfg.head,
                                 input_kind=cfg.input_kind))


for _cfg in CONFIGS:
    _register(_cfg)
