"""Recipe-driven input pipelines: timm's transforms for images, frame-consistent transforms for DVS clips.

Static images (PIL in, float32 ``[C, H, W]`` out): train = [RandomResizedCrop | Resize] -> hflip ->
RandAugment (timm; optionally restricted to a list of op names, e.g. Spikformer's 5 ops) -> ToTensor ->
Normalize -> RandomErasing (timm); eval = [Resize(size / crop_pct) -> CenterCrop(size)] -> ToTensor -> Normalize.

DVS clips (float32 ``[T, 2, H, W]`` in and out): resize (both splits, SDT's 64x64 CIFAR10-DVS) and, for
training, horizontal flip, ``SNNAugmentWide`` and Cutout, each drawn once per clip and applied identically to
all T frames.

timm is imported only by the steps that use it: a pipeline without them (the digits recipes) does not pay its
import (seconds per worker).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torchvision import transforms as tv
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from harness.data.catalog import DatasetInfo
from harness.recipe import DataRecipe

Transform = Callable[[torch.Tensor], torch.Tensor]


def static_transform(info: DatasetInfo, recipe: DataRecipe | None, train: bool, native_size: int | None) -> tv.Compose:
    """The image pipeline for one split; ``recipe=None`` gives the plain eval pipeline for both splits."""
    train = train and recipe is not None
    recipe = recipe or DataRecipe()
    size = recipe.input_size or native_size or info.input_shape[-1]
    mean = recipe.normalize_mean or info.mean
    std = recipe.normalize_std or info.std
    if mean is None or std is None or len(mean) != len(std):
        raise ValueError(f"{info.name}: normalisation mean {mean} / std {std} must be two equal-length tuples")
    interp = recipe.interpolation
    steps: list[Callable] = []
    if train:
        if recipe.random_resized_crop is not None:
            from timm.data.transforms import RandomResizedCropAndInterpolation

            steps.append(RandomResizedCropAndInterpolation(size, scale=recipe.random_resized_crop, interpolation=interp))
        elif size != native_size:
            steps.append(tv.Resize((size, size), interpolation=InterpolationMode(interp)))
        if recipe.hflip > 0:
            steps.append(tv.RandomHorizontalFlip(recipe.hflip))
        if recipe.randaugment:
            steps.append(randaugment(recipe.randaugment, recipe.randaugment_ops, size, mean, interp))
    elif size != native_size or recipe.eval_crop_pct < 1.0:
        steps += [
            tv.Resize(math.floor(size / recipe.eval_crop_pct), interpolation=InterpolationMode(interp)),
            tv.CenterCrop(size),
        ]
    steps += [tv.ToTensor(), tv.Normalize(mean, std)]
    if train and recipe.random_erasing > 0:
        from timm.data.random_erasing import RandomErasing

        steps.append(RandomErasing(recipe.random_erasing, mode=recipe.random_erasing_mode, max_count=1, device="cpu"))
    return tv.Compose(steps)


def randaugment(config: str, ops: tuple[str, ...] | None, size: int, mean: tuple[float, ...], interpolation: str) -> Callable:
    """timm's RandAugment with timm's default hparams for ``size``; ``ops`` restricts it to those timm op names."""
    from timm.data.auto_augment import rand_augment_transform
    from timm.data.transforms import str_to_pil_interp

    hparams = {
        "translate_const": int(size * 0.45),
        "img_mean": tuple(min(255, round(255 * m)) for m in mean),
        "interpolation": str_to_pil_interp(interpolation),
    }
    return rand_augment_transform(config, hparams, transforms=list(ops) if ops else None)


class SNNAugmentWide:
    """TrivialAugment-style policy of the official DVS scripts, one draw per clip for all T frames.

    One of Identity, ShearX, TranslateX, TranslateY, Rotate (magnitude: one of 31 evenly spaced bins of
    [-0.3, 0.3] / [-5, 5] px / [-30, 30] deg, then a random sign), or Cutout (random erasing with p 1,
    area scale (0.001, 0.11), aspect 1, value 0); nearest interpolation, zero fill.
    """

    BINS = 31
    SPACE = {"ShearX": 0.3, "TranslateX": 5.0, "TranslateY": 5.0, "Rotate": 30.0}
    OPS = ("Identity", "ShearX", "TranslateX", "TranslateY", "Rotate", "Cutout")

    def __init__(self) -> None:
        self.cutout = tv.RandomErasing(p=1.0, scale=(0.001, 0.11), ratio=(1.0, 1.0), value=0)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        op = self.OPS[int(torch.randint(len(self.OPS), (1,)))]
        if op == "Identity":
            return clip
        if op == "Cutout":
            return self.cutout(clip)
        bound = self.SPACE[op]
        magnitude = float(torch.linspace(-bound, bound, self.BINS)[torch.randint(self.BINS, (1,))])
        if torch.randint(2, (1,)):
            magnitude = -magnitude
        return apply_geometric(clip, op, magnitude)


def apply_geometric(clip: torch.Tensor, op: str, magnitude: float) -> torch.Tensor:
    """One geometric op on every frame of ``[..., H, W]`` (nearest interpolation, zero fill)."""
    nearest = InterpolationMode.NEAREST
    if op == "ShearX":
        return TF.affine(clip, angle=0.0, translate=[0, 0], scale=1.0, shear=[math.degrees(magnitude), 0.0], interpolation=nearest)
    if op == "TranslateX":
        return TF.affine(clip, angle=0.0, translate=[int(magnitude), 0], scale=1.0, shear=[0.0, 0.0], interpolation=nearest)
    if op == "TranslateY":
        return TF.affine(clip, angle=0.0, translate=[0, int(magnitude)], scale=1.0, shear=[0.0, 0.0], interpolation=nearest)
    if op == "Rotate":
        return TF.rotate(clip, magnitude, interpolation=nearest)
    raise ValueError(f"unknown geometric op {op!r}")


class ClipHFlip:
    """Flip all frames of a clip horizontally together with probability ``p``."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        return clip.flip(-1) if torch.rand(1).item() < self.p else clip


class ClipCutout:
    """Zero one ``size`` x ``size`` square (centre uniform over the frame, clipped at borders) in every frame."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        h, w = clip.shape[-2:]
        cy, cx = int(torch.randint(h, (1,))), int(torch.randint(w, (1,)))
        half = self.size // 2
        out = clip.clone()
        out[..., max(0, cy - half) : min(h, cy + half), max(0, cx - half) : min(w, cx + half)] = 0
        return out


def with_polarity_sum(clip: torch.Tensor) -> torch.Tensor:
    """``[T, 2, H, W]`` -> ``[T, 3, H, W]``: the two polarity channels and their sum (a 3-channel event input)."""
    return torch.cat([clip, clip.sum(1, keepdim=True)], 1)


class ClipResize:
    """Resize every frame to ``size`` x ``size`` (bilinear, antialiased: counts become non-integer, as in SDT)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        return TF.resize(clip, [self.size, self.size], interpolation=InterpolationMode.BILINEAR, antialias=True)


def dvs_transform(recipe: DataRecipe | None, train: bool, resize: int | None = None) -> tv.Compose:
    """The clip pipeline for one split; ``resize`` (or the recipe's ``dvs_resize``) applies to both splits."""
    recipe = recipe or DataRecipe()
    steps: list[Transform] = []
    size = resize or recipe.dvs_resize
    if size:
        steps.append(ClipResize(size))
    if train:
        if recipe.dvs_hflip > 0:
            steps.append(ClipHFlip(recipe.dvs_hflip))
        if recipe.dvs_augment == "snn_augment_wide":
            steps.append(SNNAugmentWide())
        if recipe.dvs_cutout:
            steps.append(ClipCutout(recipe.dvs_cutout))
    if recipe.dvs_channels == 3:
        steps.append(with_polarity_sum)
    return tv.Compose(steps)
