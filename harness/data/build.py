"""``build_dataset``: one entry point for every dataset name, split and recipe."""

from __future__ import annotations

import inspect
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch.utils.data import Dataset

from harness.data import digits_dvs as ddvs
from harness.data.catalog import DatasetInfo, default_data_dir, get_info
from harness.data.cifar import cifar_split_folder, read_cifar
from harness.data.datasets import ClipArrayDataset, ClipFileDataset, ImageArrayDataset, ImageFileDataset
from harness.data.digits import digits_split, load_digits_raw, stratified_split
from harness.data.dvs_files import scan_spikingjelly, scan_tonic
from harness.data.dvs_emulator import EventBatch, SensorConfig
from harness.data.events import frame_some_by_number
from harness.data.imagenet import scan_imagenet
from harness.data.transforms import dvs_transform, static_transform
from harness.recipe import DataRecipe

DIGIT_CLASSES = [str(d) for d in range(10)]
# where each real dataset is looked for when ``root`` is not given: under $SPIKEBENCH_DATA (or ~/.cache/spikebench)
DEFAULT_SUBDIR = {"cifar10": "", "cifar100": "", "imagenet": "imagenet", "dvs128": "DVS128Gesture", "cifar10dvs": "CIFAR10DVS"}


def build_dataset(
    name: str, split: str, root: str | Path | None = None, T: int | None = None, recipe: DataRecipe | None = None, **options: Any
) -> Dataset:
    """A Dataset of ``(x, y)``: x float32 ``[C, H, W]`` (static) or ``[T, C, H, W]`` (event data), y int.

    ``split`` is "train" or "test" ("val" is a synonym of "test" for imagenet). The train split applies the
    recipe's augmentation; the test split the eval transform; ``recipe=None`` gives the plain eval pipeline for
    both. ``T`` (frames per clip) defaults to the dataset's ``default_T``. Dataset-specific ``options`` are
    documented in ``harness/data/README.md``.
    """
    info = get_info(name)
    split = _check_split(info, split)
    builder = _BUILDERS[name]
    return builder(info, split, Path(root).expanduser() if root is not None else None, T or info.default_T, recipe, **options)


def check_dataset(name: str, root: str | Path | None = None, T: int | None = None,
                  splits: tuple[str, ...] = ("train", "test"), **options: Any) -> None:
    """Raise the ``DatasetError`` that ``build_dataset`` would (what is expected where, the download page) when one
    of ``splits`` of ``name`` is not under ``root``; reads no sample, so that a suite's data can be checked before it
    runs. Datasets that ship with a package or are generated are always present."""
    info = get_info(name)
    locate = _LOCATORS.get(name)
    if locate is None:
        return
    real_root = _real_root(name, Path(root).expanduser() if root is not None else None)
    for split in splits:
        locate(info, _check_split(info, split), real_root, T or info.default_T, **options)


def dataset_options(name: str) -> dict[str, Any]:
    """The options ``build_dataset(name, ...)`` accepts (a suite's ``data_options``), each with its annotation."""
    parameters = inspect.signature(_BUILDERS[get_info(name).name], eval_str=True).parameters.values()
    return {p.name: p.annotation for p in parameters
            if p.name not in _COMMON_ARGUMENTS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _check_split(info: DatasetInfo, split: str) -> str:
    """Validate ``split``; imagenet's "val" and "test" both mean the val folder."""
    if split not in info.splits:
        raise ValueError(f"dataset {info.name!r}: unknown split {split!r}; expected one of {', '.join(info.splits)}")
    return "test" if split == "val" else split


def _no_options(name: str, options: dict[str, Any]) -> None:
    """Reject options a builder does not understand (typos must not pass silently)."""
    if options:
        raise TypeError(f"dataset {name!r}: unknown options {sorted(options)}")


def _digits(info: DatasetInfo, split: str, root: Path | None, T: int | None, recipe: DataRecipe | None, size: int | None = None, **options: Any) -> Dataset:
    """sklearn digits upsampled to ``size`` (default: the recipe's input_size, else 32), 3 equal channels."""
    _no_options(info.name, options)
    size = size or (recipe.input_size if recipe else None) or info.input_shape[-1]
    images, labels = digits_split(split, size)
    return ImageArrayDataset(images, labels, DIGIT_CLASSES, static_transform(info, recipe, split == "train", size))


def digits_dvs_config(size: int = 16, seed: int = 0, noise_rate_hz: float | None = None) -> ddvs.DigitsDVSConfig:
    """The emulator configuration for a ``size`` x ``size`` sensor (picture 3/4 of the sensor, loop side 1/8)."""
    sensor = SensorConfig(height=size, width=size)
    if noise_rate_hz is not None:
        sensor = replace(sensor, noise_rate_hz=noise_rate_hz)
    return ddvs.DigitsDVSConfig(sensor=sensor, picture_px=round(size * 0.75), amplitude_px=size / 8, seed=seed)


@lru_cache(maxsize=4)
def _digits_dvs_events(cfg: ddvs.DigitsDVSConfig, cache_dir: Path | None) -> tuple[EventBatch, np.ndarray]:
    """Events of all digits, kept in memory for the process (train and test share them)."""
    return ddvs.load_or_generate(cfg, cache_dir)


def _digits_dvs(
    info: DatasetInfo, split: str, root: Path | None, T: int | None, recipe: DataRecipe | None,
    size: int | None = None, seed: int = 0, noise_rate_hz: float | None = None, **options: Any,
) -> Dataset:
    """Emulated DVS recordings of the digits on a ``size`` x ``size`` sensor (default: the recipe's input_size, else
    16), framed by number into T frames; ``root`` is the cache directory."""
    _no_options(info.name, options)
    size = size or (recipe.input_size if recipe else None) or info.input_shape[-1]
    cfg = digits_dvs_config(size, seed, noise_rate_hz)
    events, labels = _digits_dvs_events(cfg, root)
    idx = stratified_split(load_digits_raw()[1])[split]
    frames = frame_some_by_number(events.x, events.y, events.p, events.offsets, idx, T, size, size, dtype=np.uint16)
    return ClipArrayDataset(frames, labels[idx], DIGIT_CLASSES, dvs_transform(recipe, split == "train"))


def _real_root(name: str, root: Path | None) -> Path:
    """``root`` or the default location of ``name`` under the data directory."""
    return root if root is not None else default_data_dir() / DEFAULT_SUBDIR[name]


def _cifar(info: DatasetInfo, split: str, root: Path | None, T: int | None, recipe: DataRecipe | None, **options: Any) -> Dataset:
    """CIFAR-10/100 from the python pickle files (``root`` holds ``cifar-10-batches-py/`` or ``cifar-100-python/``)."""
    _no_options(info.name, options)
    images, labels, classes = read_cifar(info.name, _real_root(info.name, root), split)
    return ImageArrayDataset(images, labels, classes, static_transform(info, recipe, split == "train", info.input_shape[-1]))


def _imagenet(info: DatasetInfo, split: str, root: Path | None, T: int | None, recipe: DataRecipe | None, **options: Any) -> Dataset:
    """ImageNet from ``root/train/<wnid>/`` and ``root/val/<wnid>/``."""
    _no_options(info.name, options)
    paths, labels, classes = scan_imagenet(_real_root(info.name, root), split)
    return ImageFileDataset(paths, labels, classes, static_transform(info, recipe, split == "train", None))


def _dvs_files(
    info: DatasetInfo, split: str, root: Path | None, T: int | None, recipe: DataRecipe | None,
    layout: Literal["spikingjelly", "tonic"] = "spikingjelly", resize: int | None = None, **options: Any,
) -> Dataset:
    """DVS128 Gesture / CIFAR10-DVS in spikingjelly's (default) or tonic's layout, framed into T frames."""
    _no_options(info.name, options)
    sources, labels, classes, load = _dvs_scanner(info.name, layout)(info.name, _real_root(info.name, root), split, T)
    return ClipFileDataset(sources, labels, classes, load, dvs_transform(recipe, split == "train", resize))


def _dvs_scanner(name: str, layout: str):
    """The function that lists an event dataset's files in ``layout`` (spikingjelly's or tonic's)."""
    scanners = {"spikingjelly": scan_spikingjelly, "tonic": scan_tonic}
    if layout not in scanners:
        raise ValueError(f"dataset {name!r}: layout must be one of {sorted(scanners)}, got {layout!r}")
    return scanners[layout]


_COMMON_ARGUMENTS = ("info", "split", "root", "T", "recipe")  # what every builder takes; the rest are options
_BUILDERS = {
    "digits": _digits,
    "digits_dvs": _digits_dvs,
    "cifar10": _cifar,
    "cifar100": _cifar,
    "imagenet": _imagenet,
    "dvs128": _dvs_files,
    "cifar10dvs": _dvs_files,
}


def _locate_cifar(info: DatasetInfo, split: str, root: Path, T: int | None, **_: Any) -> None:
    cifar_split_folder(info.name, root, split)


def _locate_imagenet(info: DatasetInfo, split: str, root: Path, T: int | None, **_: Any) -> None:
    scan_imagenet(root, split)


def _locate_dvs(info: DatasetInfo, split: str, root: Path, T: int | None,
                layout: Literal["spikingjelly", "tonic"] = "spikingjelly", **_: Any) -> None:
    _dvs_scanner(info.name, layout)(info.name, root, split, T)


# how check_dataset finds each real dataset's files without reading them (the builders' own first step)
_LOCATORS = {"cifar10": _locate_cifar, "cifar100": _locate_cifar, "imagenet": _locate_imagenet,
             "dvs128": _locate_dvs, "cifar10dvs": _locate_dvs}
