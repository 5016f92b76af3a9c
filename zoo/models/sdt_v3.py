"""Spike-driven Transformer v3 / E-SpikeFormer (Yao et al., TPAMI 2025), faithful to
BICLab/Spike-Driven-Transformer-V3 (``SDT_V3/Classification``).

No LIF: every neuron is the integer MultiSpike of ``zoo.core`` (spike counts 0..D, D = 4 in the "1x4" models).
Two official code bases, two classes:

- ``EfficientSpikingTransformer`` (``Model_Base/models.py``, 5.1M/10M/19M): the Meta-SpikeFormer layout with
  separable-conv blocks (three neurons each) and linear attention ``(Q K^T) V`` with V widened x4, scaled by
  ``2 * d^-0.5``; MultiSpike "base" variant; no time axis (T = 1).
- ``SpikformerV3`` (``Model_Large/spikformer.py``, 83M/171M): three conv stages, then 12 token blocks with
  1-D RepConv attention ``Q (K^T V) * 0.125``, layer scale and (83M only) an extra RepConv branch; two heads,
  ``head`` on the float features and ``head_kd`` on their integer spikes; MultiSpike "large" variant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from zoo.core import MultiSpike, SeqFlat, SwapRule, conv_bn
from zoo.models.base import DistilledClassifier, SpikingClassifier
from zoo.models.sdt_v2 import DOWNSAMPLE_KEY_RULES, DownSampling
from zoo.models.spikformer import merge_heads, split_heads, translate_keys, trunc_normal_linears
from zoo.registry import ModelCard, register_model


def _spike(D: int, variant: str) -> MultiSpike:
    return MultiSpike(D=D, variant=variant)


class ChannelConvMLP(nn.Module):
    """``x + BN(conv3x3(spike(BN(conv3x3(spike(x))))))``, hidden width ``ratio * dim`` (the conv blocks' MLP)."""

    def __init__(self, dim: int, ratio: int, bias: bool, spike) -> None:
        super().__init__()
        self.spike1, self.conv1 = spike(), conv_bn(dim, dim * ratio, 3, bias=bias)
        self.spike2, self.conv2 = spike(), conv_bn(dim * ratio, dim, 3, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.spike2(self.conv1(self.spike1(x))))


class TokenMLP(nn.Module):
    """``BN(fc2(spike(BN(fc1(spike(x))))))`` over tokens (biased 1x1 Conv1d), on ``[T, B, C, *spatial]``."""

    def __init__(self, dim: int, hidden: int, spike) -> None:
        super().__init__()
        self.spike1, self.fc1 = spike(), conv_bn(dim, hidden, 1, bias=True, dims=1)
        self.spike2, self.fc2 = spike(), conv_bn(hidden, dim, 1, bias=True, dims=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc2(self.spike2(self.fc1(self.spike1(x.flatten(3)))))
        return y.view_as(x)


class SepConvSpike(nn.Module):
    """Inverted separable conv with a neuron before each conv: pw 1x1 (x2) -> depthwise k x k -> pw 1x1, each + BN."""

    def __init__(self, dim: int, kernel: int, spike, expansion: int = 2) -> None:
        super().__init__()
        hidden = expansion * dim
        self.spike1, self.pw1 = spike(), conv_bn(dim, hidden, 1)
        self.spike2, self.dw = spike(), conv_bn(hidden, hidden, kernel, groups=hidden)
        self.spike3, self.pw2 = spike(), conv_bn(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.spike3(self.dw(self.spike2(self.pw1(self.spike1(x))))))


class BaseConvBlock(nn.Module):
    """Base conv block: ``x + SepConvSpike_7x7(x)``, then the 3x3 channel MLP (``MS_ConvBlock_spike_SepConv``)."""

    def __init__(self, dim: int, ratio: int, spike) -> None:
        super().__init__()
        self.sep = SepConvSpike(dim, 7, spike)
        self.mlp = ChannelConvMLP(dim, ratio, False, spike)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x + self.sep(x))


class LinearAttention(nn.Module):
    """Base attention: ``proj(spike(((Q K^T) V) * 2 d^-0.5))`` with integer-spike Q, K (width C) and V (width ``v_ratio`` C).

    Computed in the official order (``Q K^T`` first); no softmax.
    """

    def __init__(self, dim: int, heads: int, v_ratio: int, spike) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads, self.scale = heads, 2 * (dim // heads) ** -0.5
        self.spike = spike()
        self.q, self.k, self.v = conv_bn(dim, dim, 1), conv_bn(dim, dim, 1), conv_bn(dim, dim * v_ratio, 1)
        self.q_spike, self.k_spike, self.v_spike, self.attn_spike = spike(), spike(), spike(), spike()
        self.proj = conv_bn(dim * v_ratio, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spike(x)
        q = split_heads(self.q_spike(self.q(s)), self.heads)
        k = split_heads(self.k_spike(self.k(s)), self.heads)
        v = self.v_spike(self.v(s))
        y = (q @ k.transpose(-2, -1)) @ split_heads(v, self.heads) * self.scale
        return self.proj(self.attn_spike(merge_heads(y, v.shape)))


class BaseBlock(nn.Module):
    """``MS_Block_Spike_SepConv``: ``x + SepConvSpike_3x3(x)``, ``x + attention(x)``, ``x + MLP(x)``."""

    def __init__(self, dim: int, heads: int, ratio: int, spike) -> None:
        super().__init__()
        self.conv = SepConvSpike(dim, 3, spike)
        self.attn = LinearAttention(dim, heads, 4, spike)
        self.mlp = TokenMLP(dim, dim * ratio, spike)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.conv(x)
        x = x + self.attn(x)
        return x + self.mlp(x)


class EfficientSpikingTransformer(SpikingClassifier):
    """E-SpikeFormer Base (``Spiking_vit_MetaFormer_Spike_SepConv``) with stage widths ``dims``.

    ``blocks``: attention blocks in stages 3 and 4. The official builders pass ``depths=8`` but the class
    hard-codes 6 + 2 whatever it says; (6, 2) is the default and any other split can be asked for.
    The head is ``Linear(spike_norm1(mean over tokens))``: integer counts 0..D, not divided.
    The official code has no time axis; T > 1 repeats the same computation (the neuron has no state).
    """

    def __init__(self, dims: tuple[int, int, int, int], num_classes: int = 1000, T: int = 1, heads: int = 8,
                 mlp_ratio: int = 4, D: int = 4, blocks: tuple[int, int] = (6, 2), in_channels: int = 3,
                 input_kind: str = "static") -> None:
        super().__init__(T=T, num_classes=num_classes, in_channels=in_channels, input_kind=input_kind)
        if len(dims) != 4:
            raise ValueError(f"EfficientSpikingTransformer needs 4 stage widths, got {list(dims)}")
        c0, c1, c2, c3 = dims
        spike = partial(_spike, D, "base")
        self.down1_1 = DownSampling(in_channels, c0 // 2, 7, 2, None)
        self.conv1_1 = BaseConvBlock(c0 // 2, mlp_ratio, spike)
        self.down1_2 = DownSampling(c0 // 2, c0, 3, 2, spike())
        self.conv1_2 = BaseConvBlock(c0, mlp_ratio, spike)
        self.down2 = DownSampling(c0, c1, 3, 2, spike())
        self.conv2_1 = BaseConvBlock(c1, mlp_ratio, spike)
        self.conv2_2 = BaseConvBlock(c1, mlp_ratio, spike)
        self.down3 = DownSampling(c1, c2, 3, 2, spike())
        self.blocks3 = nn.Sequential(*(BaseBlock(c2, heads, mlp_ratio, spike) for _ in range(blocks[0])))
        self.down4 = DownSampling(c2, c3, 3, 1, spike())
        self.blocks4 = nn.Sequential(*(BaseBlock(c3, heads, mlp_ratio, spike) for _ in range(blocks[1])))
        self.head_spike = MultiSpike(D=D, norm=1, variant="base")
        self.head = nn.Linear(c3, num_classes)
        self.apply(trunc_normal_linears)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1_2(self.down1_2(self.conv1_1(self.down1_1(x))))
        x = self.conv2_2(self.conv2_1(self.down2(x)))
        x = self.blocks4(self.down4(self.blocks3(self.down3(x))))
        return self.head(self.head_spike(x.flatten(3).mean(3)))

    def official_key_map(self, official_keys: Iterable[str]) -> dict[str, str | None]:
        """Official ``Spiking_vit_MetaFormer_Spike_SepConv`` keys -> ours."""
        sep = {"pwconv1": "pw1", "dwconv": "dw", "pwconv2": "pw2"}
        rules = [
            *DOWNSAMPLE_KEY_RULES,
            *[(rf"ConvBlock(\d_\d)\.0\.Conv\.{o}\.(\d)\.(.+)", rf"conv\1.sep.{z}.\2.\3") for o, z in sep.items()],
            (r"ConvBlock(\d_\d)\.0\.conv(\d)\.(.+)", r"conv\1.mlp.conv\2.0.\3"),
            (r"ConvBlock(\d_\d)\.0\.bn(\d)\.(.+)", r"conv\1.mlp.conv\2.1.\3"),
            *[(rf"block([34])\.(\d+)\.conv\.{o}\.(\d)\.(.+)", rf"blocks\1.\2.conv.{z}.\3.\4") for o, z in sep.items()],
            (r"block([34])\.(\d+)\.attn\.(q|k|v|proj)_conv\.(\d)\.(.+)", r"blocks\1.\2.attn.\3.\4.\5"),
            (r"block([34])\.(\d+)\.mlp\.(fc\d)_conv\.(.+)", r"blocks\1.\2.mlp.\3.0.\4"),
            (r"block([34])\.(\d+)\.mlp\.(fc\d)_bn\.(.+)", r"blocks\1.\2.mlp.\3.1.\4"),
            (r"head\.(weight|bias)", r"head.\1"),
        ]
        return translate_keys(official_keys, rules)


# ----------------------------------------------------------------------------------------- Large


def rep_conv_1d(cin: int, hidden: int, cout: int) -> list[nn.Module]:
    """The Large code's ``RepConv``: 1x1 Conv1d -> BN -> 1x1 Conv1d -> BN, no biases."""
    return [nn.Conv1d(cin, hidden, 1, bias=False), nn.BatchNorm1d(hidden),
            nn.Conv1d(hidden, cout, 1, bias=False), nn.BatchNorm1d(cout)]


class DropPath(nn.Module):
    """Stochastic depth as the Large code applies it (timm's DropPath on ``[T, B, C, N]``).

    ``over_time=True`` (official): the keep/drop draw is per index of the first axis, i.e. one per time step for
    the whole batch; ``False``: one per sample (the usual stochastic depth).
    """

    def __init__(self, rate: float, over_time: bool) -> None:
        super().__init__()
        self.rate, self.over_time = float(rate), over_time

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (x.shape[0],) + (1,) * (x.dim() - 1) if self.over_time else (1, x.shape[1]) + (1,) * (x.dim() - 2)
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)


class RepConvAttention(nn.Module):
    """Large attention: ``proj(spike(Q (K^T V) * 0.125))`` with Q, K, V = spike(BN(RepConv1d(spike(x))))."""

    def __init__(self, dim: int, heads: int, spike) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        hidden = int(dim * 1.5)
        self.spike = spike()
        self.q, self.k, self.v, self.proj = (SeqFlat(*rep_conv_1d(dim, hidden, dim), nn.BatchNorm1d(dim))
                                             for _ in range(4))
        self.q_spike, self.k_spike, self.v_spike, self.attn_spike = spike(), spike(), spike(), spike()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spike(x)
        q = split_heads(self.q_spike(self.q(s)), self.heads)
        k = split_heads(self.k_spike(self.k(s)), self.heads)
        v = split_heads(self.v_spike(self.v(s)), self.heads)
        y = q @ (k.transpose(-2, -1) @ v) * 0.125
        return self.proj(self.attn_spike(merge_heads(y, x.shape)))


class LargeBlock(nn.Module):
    """``[extra: x + RepConv2(spike(x))]``, ``x + ls1 * attention(x)``, ``x + ls2 * MLP(x)`` on ``[T, B, C, N]``.

    ``rep_branch``: the 83M model's extra RepConv branch (``choice="base"``). Layer scale (init 1e-6) is always
    on in the official code; ``layer_scale=None`` removes it.
    """

    def __init__(self, dim: int, heads: int, ratio: int, spike, rep_branch: bool, layer_scale: float | None,
                 drop_path: DropPath) -> None:
        super().__init__()
        self.rep = nn.Sequential(spike(), SeqFlat(*rep_conv_1d(dim, dim, dim))) if rep_branch else None
        self.attn = RepConvAttention(dim, heads, spike)
        self.mlp = TokenMLP(dim, dim * ratio, spike)
        self.scale1 = nn.Parameter(torch.full((dim,), layer_scale)) if layer_scale is not None else None
        self.scale2 = nn.Parameter(torch.full((dim,), layer_scale)) if layer_scale is not None else None
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rep is not None:
            x = x + self.rep(x)
        x = x + self.drop_path(self._scaled(self.attn(x), self.scale1))
        return x + self.drop_path(self._scaled(self.mlp(x), self.scale2))

    @staticmethod
    def _scaled(y: torch.Tensor, scale: nn.Parameter | None) -> torch.Tensor:
        """Channel-wise layer scale on ``[T, B, C, N]``."""
        return y if scale is None else y * scale.unsqueeze(-1)


class SpikformerV3(DistilledClassifier):
    """E-SpikeFormer Large (the code's ``Spikformer``), widths ``dims`` = (c0, c1, c2), 12 blocks at c2.

    Two heads on the token mean ``f`` (``[T, B, C]``): ``head(f)`` on the float features and, with ``kd``,
    ``head_kd(spike_norm1(f))`` on their integer counts. In training ``forward`` returns both (each averaged
    over T, or per step with ``per_step=True``); in eval their mean. ``forward_steps`` returns the mean.
    ``drop_path_rate`` 0.1 (the class default; main_finetune.py never sets it), linear over the blocks,
    drawn per time step (``drop_path_over_time``, official) or per sample.
    """

    def __init__(self, dims: tuple[int, int, int], rep_branch: bool, num_classes: int = 1000, T: int = 1,
                 depth: int = 12, heads: int = 8, mlp_ratio: int = 4, D: int = 4, kd: bool = True,
                 layer_scale: float | None = 1e-6, drop_path_rate: float = 0.1, drop_path_over_time: bool = True,
                 in_channels: int = 3, input_kind: str = "static") -> None:
        super().__init__(T=T, num_classes=num_classes, in_channels=in_channels, input_kind=input_kind)
        if len(dims) != 3:
            raise ValueError(f"SpikformerV3 needs 3 stage widths, got {list(dims)}")
        c0, c1, c2 = dims
        spike = partial(_spike, D, "large")
        self.kd = kd
        self.down1_1 = DownSampling(in_channels, c0 // 2, 7, 2, None)
        self.conv1_1 = ChannelConvMLP(c0 // 2, mlp_ratio, True, spike)
        self.down1_2 = DownSampling(c0 // 2, c0, 3, 2, spike())
        self.conv1_2 = ChannelConvMLP(c0, mlp_ratio, True, spike)
        self.down2 = DownSampling(c0, c1, 3, 2, spike())
        self.conv2_1 = ChannelConvMLP(c1, mlp_ratio, True, spike)
        self.conv2_2 = ChannelConvMLP(c1, mlp_ratio, True, spike)
        self.down3 = DownSampling(c1, c2, 3, 2, spike())
        rates = [drop_path_rate * i / max(1, depth - 1) for i in range(depth)]  # torch.linspace(0, rate, depth)
        self.blocks = nn.Sequential(*(
            LargeBlock(c2, heads, mlp_ratio, spike, rep_branch, layer_scale, DropPath(r, drop_path_over_time))
            for r in rates))
        self.head = nn.Linear(c2, num_classes)
        self.head_spike = MultiSpike(D=D, norm=1, variant="large")
        self.head_kd = nn.Linear(c2, num_classes) if kd else None
        self.apply(_xavier_linears)

    def head_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-step logits of the float head and of the spiking ``head_kd`` (None without ``kd``)."""
        x = self.conv1_2(self.down1_2(self.conv1_1(self.down1_1(x))))
        x = self.down3(self.conv2_2(self.conv2_1(self.down2(x))))
        f = self.blocks(x.flatten(3)).mean(3)
        return self.head(f), (self.head_kd(self.head_spike(f)) if self.head_kd is not None else None)

    def official_key_map(self, official_keys: Iterable[str]) -> dict[str, str | None]:
        """Official Large ``Spikformer`` keys -> ours."""
        rules = [
            *DOWNSAMPLE_KEY_RULES,
            # SeqToANNContainer(conv, BN): "<i>" in spikingjelly 0.0.0.0.14, "module.<i>" in older releases
            (r"ConvBlock(\d_\d)\.0\.(conv\d)\.0\.(?:module\.)?(\d)\.(.+)", r"conv\1.\2.\3.\4"),
            # two-conv RepConvs: conv1.<0 conv | 1 BN> -> 0/1, conv2.<0|1> -> 2/3 of our flat sequence
            (r"block3\.(\d+)\.rep_conv\.conv1\.(\d)\.(.+)", r"blocks.\1.rep.1.\2.\3"),
            (r"block3\.(\d+)\.rep_conv\.conv2\.0\.(.+)", r"blocks.\1.rep.1.2.\2"),
            (r"block3\.(\d+)\.rep_conv\.conv2\.1\.(.+)", r"blocks.\1.rep.1.3.\2"),
            (r"block3\.(\d+)\.attn\.(q|k|v|proj)_conv\.0\.conv1\.(\d)\.(.+)", r"blocks.\1.attn.\2.\3.\4"),
            (r"block3\.(\d+)\.attn\.(q|k|v|proj)_conv\.0\.conv2\.0\.(.+)", r"blocks.\1.attn.\2.2.\3"),
            (r"block3\.(\d+)\.attn\.(q|k|v|proj)_conv\.0\.conv2\.1\.(.+)", r"blocks.\1.attn.\2.3.\3"),
            (r"block3\.(\d+)\.attn\.(q|k|v|proj)_conv\.1\.(.+)", r"blocks.\1.attn.\2.4.\3"),
            (r"block3\.(\d+)\.mlp\.(fc\d)_conv\.(.+)", r"blocks.\1.mlp.\2.0.\3"),
            (r"block3\.(\d+)\.mlp\.(fc\d)_bn\.(.+)", r"blocks.\1.mlp.\2.1.\3"),
            (r"block3\.(\d+)\.layer_scale(\d)", r"blocks.\1.scale\2"),
            (r"(head|head_kd)\.(weight|bias)", r"\1.\2"),
        ]
        return translate_keys(official_keys, rules)


def _xavier_linears(module: nn.Module) -> None:
    """The Large code's Linear init (xavier uniform, bias 0)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# ----------------------------------------------------------------------------------------- registry

PAPER = ("Scaling Spike-driven Transformer with Efficient Spike Firing Approximation Training (E-SpikeFormer, "
         "SDT v3; Yao et al., TPAMI 2025)")
REPO = "BICLab/Spike-Driven-Transformer-V3@00fcd1f"
CLAIM_SOURCE = "abstract (arXiv 2411.16061) and README of the official repository"


@dataclass(frozen=True)
class _Config:
    name: str
    row: str
    claimed: tuple[float, float | None]  # (params in M, ImageNet top-1 %), as printed
    code_params: int
    code_name: str
    builder: partial


CONFIGS = [
    _Config("sdtv3_5m.in1k", "E-SpikeFormer 5.1M", (5.1, None), 5_105_608, "Model_Base/models.py: Efficient_Spiking_Transformer_s",
            partial(EfficientSpikingTransformer, dims=(32, 64, 128, 192))),
    _Config("sdtv3_10m.in1k", "E-SpikeFormer 10M", (10.0, 78.5), 10_023_112, "Model_Base/models.py: Efficient_Spiking_Transformer_m",
            partial(EfficientSpikingTransformer, dims=(48, 96, 192, 240))),
    _Config("sdtv3_19m.in1k", "E-SpikeFormer 19M", (19.0, 79.8), 18_987_504, "Model_Base/models.py: Efficient_Spiking_Transformer_l",
            partial(EfficientSpikingTransformer, dims=(64, 128, 256, 360))),
    _Config("sdtv3_83m.in1k", "E-SpikeFormer 83M", (83.0, 84.0), 83_015_952, "Model_Large/spikformer.py: spikformer12_512(kd=True)",
            partial(SpikformerV3, dims=(128, 256, 512), rep_branch=True)),
    _Config("sdtv3_171m.in1k", "E-SpikeFormer 171M", (173.0, 86.2), 171_740_714, "Model_Large/spikformer.py: spikformer12_768(kd=True)",
            partial(SpikformerV3, dims=(196, 384, 768), rep_branch=False)),
]


def _register(cfg: _Config) -> None:
    large = cfg.builder.func is SpikformerV3
    notes = (f"The code's {cfg.code_name}; T=1 x D=4 (integer spikes 0..4). "
             + ("Large: MAE-style pre-training then fine-tuning with distillation from caformer_b36_in21ft1k; "
                "both heads, layer scale, drop path 0.1 drawn per time step (official). "
                if large else "Base: trained from scratch at T=1, no time axis; 6+2 attention blocks hard-coded. ")
             + ("Claimed 173M in the abstract; the code's 171M_1x4 checkpoint has 171,740,714 parameters."
                if cfg.name.startswith("sdtv3_171m") else f"Claims: {CLAIM_SOURCE}."))
    card = ModelCard(
        name=cfg.name, family="sdt_v3", paper=PAPER, table="sdtv3_imagenet", row=cfg.row, dataset="imagenet",
        input_shape=(3, 224, 224), T=1, num_classes=1000, recipe="sdtv3_in1k_kd" if large else "sdtv3_in1k",
        claimed_params_m=cfg.claimed[0],
        claimed_top1=cfg.claimed[1], code_params=cfg.code_params,
        official_code=f"{REPO}:SDT_V3/Classification/{cfg.code_name.split(':')[0]}", notes=notes,
        extra={"code_name": cfg.code_name, "D": 4, "neuron": "MultiSpike(" + ("large" if large else "base") + ")"},
        swaps=SwapRule(neuron="multispike"),
    )
    register_model(card, cfg.builder)


for _cfg in CONFIGS:
    _register(_cfg)
