"""Writers of tiny datasets in the exact on-disk formats the readers expect (used by the data tests)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


class Py2StrPickler(pickle._Pickler):
    """Pickles ``bytes`` with the Python 2 ``str`` opcodes (SHORT_BINSTRING / BINSTRING), as the CIFAR files have."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def write_py2_pickle(obj: object, path: Path) -> None:
    """Write ``obj`` as a protocol-2 pickle whose byte strings are Python 2 strs."""
    with path.open("wb") as f:
        Py2StrPickler(f, protocol=2).dump(obj)


def _dump(obj: object, path: Path, py2: bool) -> None:
    """Pickle as Python 2 wrote the CIFAR files, or as a Python 3 re-pickled copy (str keys)."""
    if py2:
        write_py2_pickle(obj, path)
    else:
        with path.open("wb") as f:
            pickle.dump(obj, f)


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8)


def write_cifar10(root: Path, per_file: int = 4, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """``root/cifar-10-batches-py`` with 5 train batches, a test batch and batches.meta; returns data per file."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data, labels = _images(rng, per_file), [int(v) for v in rng.integers(0, 10, per_file)]
        write_py2_pickle(
            {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": [b"img_%d.png" % i for i in range(per_file)]},
            folder / name,
        )
        written[name] = (data, labels)
    write_py2_pickle({b"num_cases_per_batch": per_file, b"label_names": CIFAR10_NAMES, b"num_vis": 3072}, folder / "batches.meta")
    return written


def write_cifar100(root: Path, n: int = 6, seed: int = 1, str_keys: bool = False) -> dict[str, tuple[np.ndarray, list[int]]]:
    """``root/cifar-100-python`` with train, test and meta (Python 2 byte keys, or str keys if asked)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    key = (lambda k: k.decode()) if str_keys else (lambda k: k)  # noqa: E731
    written = {}
    for name in ("train", "test"):
        data, fine = _images(rng, n), [int(v) for v in rng.integers(0, 100, n)]
        obj = {key(b"data"): data, key(b"fine_labels"): fine, key(b"coarse_labels"): [f // 5 for f in fine]}
        _dump(obj, folder / name, py2=not str_keys)
        written[name] = (data, fine)
    meta = {key(b"fine_label_names"): [b"class%d" % i for i in range(100)], key(b"coarse_label_names"): [b"super%d" % i for i in range(20)]}
    _dump(meta, folder / "meta", py2=not str_keys)
    return written


def write_imagenet(root: Path, wnids: tuple[str, ...] = ("n01440764", "n01443537", "n01484850"), per_class: int = 2) -> None:
    """``root/{train,val}/<wnid>/*.JPEG`` with real JPEG content (a colour gradient per class plus noise)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", 1)):
        for c, wnid in enumerate(wnids):
            d = root / split / wnid
            d.mkdir(parents=True)
            for i in range(n):
                h, w = 48 + 8 * i, 64
                base = np.zeros((h, w, 3), np.float64)
                base[..., c % 3] = np.linspace(0, 255, w)[None, :]
                img = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{wnid}_{i}.JPEG", format="JPEG", quality=90)


def random_events(rng: np.random.Generator, n: int, size: int = 128) -> dict[str, np.ndarray]:
    """An event stream as spikingjelly stores it: t ascending (us), x, y, p."""
    return {
        "t": np.sort(rng.integers(0, 10**6, n)).astype(np.int64),
        "x": rng.integers(0, size, n).astype(np.uint16),
        "y": rng.integers(0, size, n).astype(np.uint16),
        "p": rng.integers(0, 2, n).astype(np.uint8),
    }


def write_spikingjelly_events(root: Path, name: str, per_class: int, seed: int = 0) -> dict[Path, dict[str, np.ndarray]]:
    """spikingjelly's ``events_np`` layout for dvs128 (train/test/<0..10>/) or cifar10dvs (<class>/)."""
    rng = np.random.default_rng(seed)
    if name == "dvs128":
        folders = [root / "events_np" / s / str(c) for s in ("train", "test") for c in range(11)]
    else:
        classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        folders = [root / "events_np" / c for c in classes]
    written = {}
    for folder in folders:
        folder.mkdir(parents=True)
        for i in range(per_class):
            path = folder / f"{folder.name}_{i}.npz"
            events = random_events(rng, int(rng.integers(40, 120)))
            np.savez(path, **events)
            written[path] = events
    return written


def write_tonic_gesture(root: Path, users: int = 10, seed: int = 0) -> dict[Path, np.ndarray]:
    """tonic's DVSGesture layout: the archive tonic checks for plus ``ibmGestureTrain/userNN_led/<label>.npy`` (x, y, p, t ms)."""
    rng = np.random.default_rng(seed)
    base = root / "DVSGesture"
    (base / "ibmGestureTrain").mkdir(parents=True)
    (base / "ibmGestureTrain.tar.gz").write_bytes(b"")
    written = {}
    for u in range(1, users + 1):
        d = base / "ibmGestureTrain" / f"user{u:02d}_led"
        d.mkdir()
        for label in range(11):
            n = int(rng.integers(30, 80))
            ev = np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n), np.sort(rng.integers(0, 5000, n))], 1)
            np.save(d / f"{label}.npy", ev)
            written[d / f"{label}.npy"] = ev
    return written
