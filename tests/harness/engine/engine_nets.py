"""Tiny spiking classifiers built from zoo.core parts, registered in the real zoo registry for engine tests.

Imported by the engine tests and by the subprocesses of the kill-and-resume test.
"""

from __future__ import annotations

import torch
from torch import nn

import zoo
from zoo.core import LIF, conv_bn
from zoo.models.base import SpikingClassifier

STATIC = "test_tiny.digits"
DVS = "test_tiny.digits_dvs"


class TinySpikingNet(SpikingClassifier):
    """conv-BN-LIF (stride 2) -> conv-BN-LIF (stride 2) -> mean over tokens -> Linear, per time step."""

    def __init__(self, T: int, num_classes: int, in_channels: int, input_kind: str, width: int = 16) -> None:
        super().__init__(T, num_classes, in_channels, input_kind)
        self.stem = conv_bn(in_channels, width, 3, stride=2)
        self.lif1 = LIF()
        self.conv = conv_bn(width, width, 3, stride=2)
        self.lif2 = LIF()
        self.head = nn.Linear(width, num_classes)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        s = self.lif2(self.conv(self.lif1(self.stem(x))))
        return self.head(s.mean(dim=(3, 4)))


def _card(name: str, dataset: str, shape: tuple[int, ...], T: int) -> zoo.ModelCard:
    return zoo.ModelCard(name=name, family="test", paper="-", table="-", row="-", dataset=dataset,
                         input_shape=shape, T=T, num_classes=10, recipe=dataset)


def register() -> None:
    """Register the tiny models once per process."""
    if STATIC in zoo.list_models("test_tiny*"):
        return
    zoo.register_model(_card(STATIC, "digits", (3, 16, 16), 2),
                       lambda T=2, num_classes=10, width=16: TinySpikingNet(T, num_classes, 3, "static", width))
    zoo.register_model(_card(DVS, "digits_dvs", (2, 16, 16), 4),
                       lambda T=4, num_classes=10, width=16, in_channels=2: TinySpikingNet(T, num_classes, in_channels,
                                                                                         "dvs", width))


register()
