"""DVS128 Gesture and CIFAR10-DVS from disk: spikingjelly's layout (numpy only) or tonic's (optional ``tonic``).

spikingjelly layout under ``root`` (what the official training scripts use):
``events_np/{train,test}/<class>/*.npz`` (dvs128) or ``events_np/<class>/*.npz`` (cifar10dvs), each with arrays
``t, x, y, p``; and/or the pre-framed ``frames_number_{T}_split_by_number/...`` with one array ``frames``
``[T, 2, 128, 128]``. Pre-framed files are used when present for this T, otherwise events are framed on the fly
(split by number, equal to spikingjelly's). Labels are indices into the sorted class-folder names, exactly as
spikingjelly's DatasetFolder assigns them (dvs128 folders sort as 0, 1, 10, 2, ..., 9: folder "10" is label 2).
CIFAR10-DVS has no official split: the first ceil(90%) of each class (sorted file names) is train, the rest
test, as the official scripts do (spikingjelly's ``split_to_train_test_set(0.9, ..., random_split=False)``).

tonic layout under ``root`` (tonic's ``save_to``): ``DVSGesture/ibmGestureTrain.tar.gz`` plus the extracted
``DVSGesture/ibmGestureTrain/userNN_lighting/<label>.npy`` (likewise Test), or ``CIFAR10DVS/CIFAR10DVS.zip``
plus ``CIFAR10DVS/<class>/*.aedat4`` (read by tonic with the ``aedat`` package). The presence check is done
here, because tonic starts a download when its layout is incomplete. Labels follow the spikingjelly order.
"""

from __future__ import annotations

import importlib.util
import math
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.catalog import CIFAR10DVS_URL, DVS128_URL
from harness.data.errors import DatasetError, corrupt_file, missing_dataset
from harness.data.events import frames_by_number

SENSOR = (128, 128)
TRAIN_RATIO = 0.9


@dataclass(frozen=True)
class DVSLayout:
    """Per-dataset facts for both layouts."""

    name: str
    url: str
    classes: tuple[str, ...]  # spikingjelly class-folder names, in label order
    presplit: bool  # dvs128 ships train/test; cifar10dvs is split 90/10 per class
    tonic_class: str
    tonic_files: tuple[str, str, int]  # (archive that must be present, event-file suffix, minimum file count)


LAYOUTS = {
    "dvs128": DVSLayout(
        "dvs128", DVS128_URL, tuple(sorted(str(i) for i in range(11))), True, "DVSGesture", ("ibmGesture{Split}.tar.gz", ".npy", 100)
    ),
    "cifar10dvs": DVSLayout(
        "cifar10dvs", CIFAR10DVS_URL,
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        False, "CIFAR10DVS", ("CIFAR10DVS.zip", ".aedat4", 1000),
    ),
}


def load_events_file(path: Path, name: str, T: int) -> np.ndarray:
    """Frame one spikingjelly ``events_np`` file (``t, x, y, p``) into float32 ``[T, 2, 128, 128]``."""
    url = LAYOUTS[name].url
    try:
        with np.load(path, allow_pickle=False) as f:
            x, y, p = f["x"], f["y"], f["p"]
            n_t = f["t"].shape
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise corrupt_file(name, path, f"expected an .npz with arrays t, x, y, p ({type(err).__name__}: {err})", url) from None
    if not (x.shape == y.shape == p.shape == n_t) or x.ndim != 1:
        raise corrupt_file(name, path, f"t, x, y, p must be 1-D and equally long, got {n_t}, {x.shape}, {y.shape}, {p.shape}", url)
    try:
        return frames_by_number(x, y, p, T, *SENSOR)
    except ValueError as err:
        raise corrupt_file(name, path, str(err), url) from None


def load_frames_file(path: Path, name: str, T: int) -> np.ndarray:
    """Read one spikingjelly pre-framed file (array ``frames`` ``[T, 2, 128, 128]``) as float32."""
    url = LAYOUTS[name].url
    try:
        with np.load(path, allow_pickle=False) as f:
            frames = f["frames"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise corrupt_file(name, path, f"expected an .npz with array 'frames' ({type(err).__name__}: {err})", url) from None
    if frames.shape != (T, 2, *SENSOR):
        raise corrupt_file(name, path, f"'frames' must be {(T, 2, *SENSOR)}, got {frames.shape}", url)
    return frames.astype(np.float32)


def scan_spikingjelly(name: str, root: Path, split: str, T: int) -> tuple[list[Path], list[int], list[str], Any]:
    """Files, labels, class names and per-file loader of one split in spikingjelly's layout."""
    layout = LAYOUTS[name]
    sub = split if layout.presplit else ""
    frames_dir = root / f"frames_number_{T}_split_by_number" / sub
    events_dir = root / "events_np" / sub
    if frames_dir.is_dir():
        base, load = frames_dir, partial(load_frames_file, name=name, T=T)
    elif events_dir.is_dir():
        base, load = events_dir, partial(load_events_file, name=name, T=T)
    else:
        expected = [f"{d.relative_to(root)}/<class>/*.npz" for d in (events_dir, frames_dir)]
        raise missing_dataset(
            name, root, [" or ".join(expected)], layout.url,
            "spikingjelly converts the downloaded archives into events_np/ once (e.g. spikingjelly.datasets."
            + ("DVS128Gesture" if name == "dvs128" else "CIFAR10DVS") + "(root, data_type='event')).",
        )
    found = sorted(p.name for p in base.iterdir() if p.is_dir())
    if tuple(found) != tuple(sorted(layout.classes)):
        raise missing_dataset(name, base, [f"class folders {', '.join(sorted(layout.classes))}"], layout.url)
    files: list[Path] = []
    labels: list[int] = []
    for label, cls in enumerate(found):
        members = sorted((base / cls).glob("*.npz"), key=lambda p: p.name)
        if not members:
            raise missing_dataset(name, base / cls, ["*.npz sample files"], layout.url)
        if not layout.presplit:
            members = _class_split(members, split)
        files += members
        labels += [label] * len(members)
    return files, labels, found, load


def _class_split(members: list, split: str) -> list:
    """The official per-class split: the first ceil(90%) of a class's samples train, the rest test."""
    cut = math.ceil(len(members) * TRAIN_RATIO)
    return members[:cut] if split == "train" else members[cut:]


def _tonic_frames(index: int, dataset: Any, T: int) -> np.ndarray:
    """Read sample ``index`` through tonic and frame it by number."""
    events, _ = dataset[index]
    return frames_by_number(events["x"], events["y"], events["p"], T, *SENSOR)


def scan_tonic(name: str, root: Path, split: str, T: int) -> tuple[list[int], list[int], list[str], Any]:
    """Sample indices, labels, class names and loader of one split in tonic's layout (tonic reads the files)."""
    layout = LAYOUTS[name]
    try:
        import tonic.datasets
    except ImportError:
        raise DatasetError(f"dataset {name!r} with layout='tonic' needs the optional tonic package: pip install 'spikebench[dvs]'") from None
    location = root / layout.tonic_class
    archive_pattern, suffix, minimum = layout.tonic_files
    archive = archive_pattern.format(Split="Train" if split == "train" else "Test")
    folder = location / archive.removesuffix(".tar.gz") if layout.presplit else location
    n_files = len(list(folder.glob(f"**/*{suffix}"))) if folder.is_dir() else 0
    if not (location / archive).is_file() or n_files < minimum:
        raise missing_dataset(
            name, location, [f"{archive} (tonic checks that it is present)", f">= {minimum} {suffix} files under {folder} (found {n_files})"],
            layout.url, "tonic would start a download for an incomplete layout, so spikebench refuses it.",
        )
    if suffix == ".aedat4" and importlib.util.find_spec("aedat") is None:
        raise DatasetError(f"dataset {name!r} with layout='tonic' reads .aedat4 files with the 'aedat' package, which is not installed")
    if layout.presplit:
        dataset = tonic.datasets.DVSGesture(save_to=str(root), train=split == "train")
    else:
        dataset = tonic.datasets.CIFAR10DVS(save_to=str(root))

    def to_label(target: int) -> int:
        """tonic's gesture number -> spikingjelly's label; tonic's CIFAR10DVS labels already match."""
        return layout.classes.index(str(target)) if layout.presplit else int(target)

    ranked = sorted(range(len(dataset.data)), key=lambda i: (to_label(dataset.targets[i]), Path(dataset.data[i]).as_posix()))
    if not layout.presplit:
        by_class = [[i for i in ranked if to_label(dataset.targets[i]) == c] for c in range(len(layout.classes))]
        ranked = [i for members in by_class for i in _class_split(members, split)]
    labels = [to_label(dataset.targets[i]) for i in ranked]
    return ranked, labels, list(layout.classes), partial(_tonic_frames, dataset=dataset, T=T)
