"""Spike-driven Transformer v1 (Yao et al., NeurIPS 2023), faithful to BICLab/Spike-Driven-Transformer.

Membrane-shortcut design: residual streams carry real-valued BN outputs and every branch starts with its
own LIF. MS-SPS stem (conv-BN-LIF three times with optional max-pools, then conv-BN with the last pool
applied to the membrane, plus ``BN(conv(LIF(m)))`` as relative position embedding), blocks
``x + SDSA(x)``, ``x + MLP(x)``, and a head ``Linear(LIF(mean over tokens))`` per time step (TET-ready).
SDSA masks Q with a threshold-0.5 neuron fired by the column sum (over tokens) of ``K * V``. The official
``talking_heads`` Conv1d is never used in its forward pass and is not built here.

The membrane MLP, the block and the head are shared with Meta-SpikeFormer (``zoo.models.sdt_v2``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from zoo.core import LIF, ConvBNLIF, MaxPool, conv_bn, layout_keeping_mean
from zoo.models.base import SpikingClassifier
from zoo.models.spikformer import SpikingConvStack, check_spatial, merge_heads, split_heads, translate_keys
from zoo.registry import ModelCard, register_model


def erode(x: torch.Tensor) -> torch.Tensor:
    """The CIFAR10-DVS code's "Erode": a 3x3, stride-1 max over the last two axes of a 5-D tensor."""
    return F.max_pool3d(x, kernel_size=(1, 3, 3), stride=1, padding=(0, 1, 1))


class MembraneMLP(nn.Module):
    """MLP branch ``BN(fc2(LIF(BN(fc1(LIF(x))))))`` on ``[T, B, C, H, W]`` (biased 1x1 layers, no residual).

    ``dims=2`` uses Conv2d/BN2d (SDT v1), ``dims=1`` Conv1d/BN1d over the flattened tokens (SDT v2):
    the same maths, different official weight shapes.
    """

    def __init__(self, dim: int, hidden: int, dims: int = 2) -> None:
        super().__init__()
        self.dims = dims
        self.fc1_lif = LIF()
        self.fc1 = conv_bn(dim, hidden, 1, bias=True, dims=dims)
        self.fc2_lif = LIF()
        self.fc2 = conv_bn(hidden, dim, 1, bias=True, dims=dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.flatten(3) if self.dims == 1 else x
        y = self.fc2(self.fc2_lif(self.fc1(self.fc1_lif(y))))
        return y.reshape(x.shape)


class MembraneBlock(nn.Module):
    """``x = x + attn(x)``; ``x = x + mlp(x)`` on membrane potentials (each branch starts with a LIF)."""

    def __init__(self, attn: nn.Module, mlp: nn.Module) -> None:
        super().__init__()
        self.attn = attn
        self.mlp = mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class SpikingHead(nn.Module):
    """Per-step classifier on the final membrane ``[T, B, C, H, W]`` -> ``[T, B, classes]``.

    Official code (``pool_then_neuron=True``): mean over tokens, then the LIF, then Linear. The paper
    writes the head as ``CH(GAP(SN(U_L)))``, i.e. the LIF on every token before pooling
    (``pool_then_neuron=False``), which feeds firing rates rather than spikes to the Linear layer.
    In fast mode (``fast``, set by ``zoo.core.use_fast_paths``) the token mean hands its gradient back in the
    membrane's layout (channels-last stays channels-last through the backward; the same values).
    """

    fast: bool = False

    def __init__(self, dim: int, num_classes: int, pool_then_neuron: bool = True) -> None:
        super().__init__()
        self.pool_then_neuron = pool_then_neuron
        self.lif = LIF()
        self.fc = nn.Linear(dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``[T, B, C]`` input of the classifier."""
        if self.pool_then_neuron:
            return self.lif(self.token_mean(x.flatten(3)))
        return self.token_mean(self.lif(x).flatten(3))

    def token_mean(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, N]`` -> ``[T, B, C]``."""
        return layout_keeping_mean(x, (3,)) if self.fast else x.mean(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class SDSA(nn.Module):
    """Spike-driven self-attention branch: ``BN(proj(erode?(Q * LIF_0.5(sum_N(K * V)))))`` from ``LIF(x)``."""

    def __init__(self, dim: int, heads: int, use_erode: bool) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"SDSA width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.use_erode = use_erode
        self.shortcut_lif = LIF()
        self.q = ConvBNLIF(dim, dim, kernel=1)
        self.k = ConvBNLIF(dim, dim, kernel=1)
        self.v = ConvBNLIF(dim, dim, kernel=1)
        self.mask_lif = LIF(v_threshold=0.5)
        self.proj = conv_bn(dim, dim, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.shortcut_lif(x)
        q, k, v = self.q(s), self.k(s), self.v(s)
        if self.use_erode:
            k, v = erode(k), erode(v)
        kv = split_heads(k, self.heads) * split_heads(v, self.heads)
        if self.use_erode:
            kv = erode(kv)
        y = split_heads(q, self.heads) * self.mask_lif(kv.sum(dim=-2, keepdim=True))
        if self.use_erode:
            y = erode(y)
        return self.proj(merge_heads(y, x.shape))


class MembraneSPS(nn.Module):
    """MS-SPS: three conv-BN-LIF(-pool) stages, conv-BN(-pool) to membrane ``m``, out ``m + BN(conv(LIF(m)))``."""

    def __init__(self, in_channels: int, dim: int, pools: Sequence[bool]) -> None:
        super().__init__()
        self.convs = SpikingConvStack(in_channels, [dim // 8, dim // 4, dim // 2], pools[:3])
        self.proj = conv_bn(dim // 2, dim, 3)
        self.pool_last = bool(pools[3])
        self.pool = MaxPool()
        self.rpe_lif = LIF()
        self.rpe = conv_bn(dim, dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.proj(self.convs(x))
        if self.pool_last:
            m = self.pool(m)
        return m + self.rpe(self.rpe_lif(m))


class SpikeDrivenTransformer(SpikingClassifier):
    """SDT-``depth``-``dim`` (8 heads). ``forward(x, per_step=True)`` gives ``[T, B, classes]`` for TET.

    Quirk switches (``official_quirks=True`` reproduces the code):
    - ``head_pool_then_neuron``: LIF after token pooling (code) vs before it (paper's ``CH(GAP(SN(U)))``);
    - ``erode``: the CIFAR10-DVS code's 3x3 max "Erode" on K, V, K*V and the masked Q (not in the paper);
      only configurations built with ``dvs_mode=True`` (CIFAR10-DVS) have it by default.
    """

    def __init__(self, dim: int, depth: int, num_classes: int, T: int, pools: Sequence[bool],
                 in_channels: int = 3, input_kind: str = "static", heads: int = 8, mlp_ratio: int = 4,
                 dvs_mode: bool = False, official_quirks: bool = True, erode: bool | None = None,
                 head_pool_then_neuron: bool | None = None) -> None:
        super().__init__(T=T, num_classes=num_classes, in_channels=in_channels, input_kind=input_kind)
        if len(pools) != 4:
            raise ValueError(f"SDT needs 4 SPS pooling flags, got {list(pools)}")
        self.pools = tuple(bool(p) for p in pools)
        self.erode = (official_quirks and dvs_mode) if erode is None else erode
        pool_then_neuron = official_quirks if head_pool_then_neuron is None else head_pool_then_neuron
        self.patch_embed = MembraneSPS(in_channels, dim, self.pools)
        self.blocks = nn.ModuleList(
            MembraneBlock(SDSA(dim, heads, self.erode), MembraneMLP(dim, dim * mlp_ratio)) for _ in range(depth))
        self.head = SpikingHead(dim, num_classes, pool_then_neuron)
        self.apply(_init_convs)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        check_spatial(x, 2 ** sum(self.pools), type(self).__name__)
        x = self.patch_embed(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def official_key_map(self, official_keys: Iterable[str]) -> dict[str, str | None]:
        """Official ``model/spikeformer.py`` keys -> ours; the unused ``talking_heads`` weights map to None."""
        rules = [
            (r"patch_embed\.proj_conv\.(.+)", r"patch_embed.convs.stages.0.conv_bn.0.\1"),
            (r"patch_embed\.proj_bn\.(.+)", r"patch_embed.convs.stages.0.conv_bn.1.\1"),
            (r"patch_embed\.proj_conv([12])\.(.+)", r"patch_embed.convs.stages.\1.conv_bn.0.\2"),
            (r"patch_embed\.proj_bn([12])\.(.+)", r"patch_embed.convs.stages.\1.conv_bn.1.\2"),
            (r"patch_embed\.proj_conv3\.(.+)", r"patch_embed.proj.0.\1"),
            (r"patch_embed\.proj_bn3\.(.+)", r"patch_embed.proj.1.\1"),
            (r"patch_embed\.rpe_conv\.(.+)", r"patch_embed.rpe.0.\1"),
            (r"patch_embed\.rpe_bn\.(.+)", r"patch_embed.rpe.1.\1"),
            (r"block\.(\d+)\.attn\.([qkv])_conv\.(.+)", r"blocks.\1.attn.\2.conv_bn.0.\3"),
            (r"block\.(\d+)\.attn\.([qkv])_bn\.(.+)", r"blocks.\1.attn.\2.conv_bn.1.\3"),
            (r"block\.(\d+)\.attn\.proj_conv\.(.+)", r"blocks.\1.attn.proj.0.\2"),
            (r"block\.(\d+)\.attn\.proj_bn\.(.+)", r"blocks.\1.attn.proj.1.\2"),
            (r"block\.\d+\.attn\.talking_heads\.weight", None),
            (r"block\.(\d+)\.mlp\.(fc\d)_conv\.(.+)", r"blocks.\1.mlp.\2.0.\3"),
            (r"block\.(\d+)\.mlp\.(fc\d)_bn\.(.+)", r"blocks.\1.mlp.\2.1.\3"),
            (r"head\.(weight|bias)", r"head.fc.\1"),
        ]
        return translate_keys(official_keys, rules)


def _init_convs(module: nn.Module) -> None:
    """The official init: Conv2d trunc-normal(0.02) with zero bias; Linear/Conv1d/BN keep PyTorch defaults."""
    if isinstance(module, nn.Conv2d):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# ----------------------------------------------------------------------------------------- registry

PAPER = "Spike-driven Transformer (Yao et al., NeurIPS 2023)"
REPO = "BICLab/Spike-Driven-Transformer@3faa82272eb499e4d56ea77707d4536e7c69a54b"
_MSVIT_CIFAR = ("MSViT's table 2 prints 9.32M for SDT CIFAR (Spikformer's count); SDT's paper/code CIFAR model "
                "is 2-512 ({p}). ")


@dataclass(frozen=True)
class _Config:
    name: str
    dim: int
    depth: int
    num_classes: int
    T: int
    pools: str
    dataset: str
    input_shape: tuple[int, int, int]
    recipe: str
    table: str
    row: str
    claimed: tuple[float | None, float | None, float | None]
    code_params: int
    config_file: str
    notes: str = ""
    dvs_mode: bool = False


CONFIGS = [
    _Config("sdt_2_512.cifar10", 512, 2, 10, 4, "0011", "cifar10", (3, 32, 32), "sdt_cifar10", "table2_small",
            "SDT", (9.32, 95.81, None), 10_233_418, "conf/cifar10/2_512_300E_t4.yml",
            _MSVIT_CIFAR.format(p="10.23M")),
    _Config("sdt_2_512.cifar100", 512, 2, 100, 4, "0011", "cifar100", (3, 32, 32), "sdt_cifar100", "table2_small",
            "SDT", (9.32, 78.21, None), 10_279_588, "conf/cifar100/2_512_300E_t4.yml",
            _MSVIT_CIFAR.format(p="10.28M") + "MSViT's table copies Spikformer's 78.21; SDT's own paper differs."),
    _Config("sdt_2_256.dvs128", 256, 2, 11, 16, "0111", "dvs128", (2, 128, 128), "sdt_dvs128", "table2_small",
            "SDT", (2.57, 99.3, None), 2_566_923, "conf/gesture/2_256_200E_t16.yml"),
    _Config("sdt_2_256.cifar10dvs", 256, 2, 10, 16, "0011", "cifar10dvs", (2, 64, 64), "sdt_cifar10dvs",
            "table2_small", "SDT", (2.57, 80.9, None), 2_566_666, "conf/cifar10-dvs/2_256_200E_t10_TET.yml",
            "Frames resized to 64x64 as the official loader does; dvs_mode (Erode) on. The only official config "
            "trains at T 10 with TET; the paper's row (and this card) is T 16: override T=10 for the config.",
            dvs_mode=True),
    _Config("sdt_8_384.in1k", 384, 8, 1000, 4, "1111", "imagenet", (3, 224, 224), "sdt_in1k", "table1_imagenet",
            "SDT 8-384", (16.81, 72.28, 3.90), 16_816_024, "conf/imagenet/8_384_300E_t4.yml"),
    _Config("sdt_8_512.in1k", 512, 8, 1000, 4, "1111", "imagenet", (3, 224, 224), "sdt_in1k", "table1_imagenet",
            "SDT 8-512", (29.68, 74.57, 4.50), 29_689_384, "conf/imagenet/8_512_300E_t4.yml"),
    _Config("sdt_8_768.in1k", 768, 8, 1000, 4, "1111", "imagenet", (3, 224, 224), "sdt_in1k_768", "table1_imagenet",
            "SDT 8-768", (66.34, 77.07, 6.09), 66_338_632, "conf/imagenet/8_768_300E_t4.yml"),
]


def _register(cfg: _Config) -> None:
    static = cfg.input_shape[0] == 3
    card = ModelCard(
        name=cfg.name, family="sdt", paper=PAPER, table=cfg.table, row=cfg.row, dataset=cfg.dataset,
        input_shape=cfg.input_shape, T=cfg.T, num_classes=cfg.num_classes, recipe=cfg.recipe,
        claimed_params_m=cfg.claimed[0], claimed_top1=cfg.claimed[1], claimed_energy_mj=cfg.claimed[2],
        code_params=cfg.code_params, official_code=f"{REPO}:model/spikeformer.py ({cfg.config_file})",
        notes=cfg.notes, extra={"pooling_stat": cfg.pools, "depth": cfg.depth, "dim": cfg.dim, "heads": 8},
    )

    register_model(card, partial(SpikeDrivenTransformer, dim=cfg.dim, depth=cfg.depth, num_classes=cfg.num_classes,
                                 T=cfg.T, pools=[c == "1" for c in cfg.pools], in_channels=cfg.input_shape[0],
                                 input_kind="static" if static else "dvs", dvs_mode=cfg.dvs_mode))


for _cfg in CONFIGS:
    _register(_cfg)
