"""ImageNet-1K in the ImageFolder layout: ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG``, decoded with PIL."""

from __future__ import annotations

from pathlib import Path

from harness.data.catalog import IMAGENET_URL
from harness.data.errors import missing_dataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLIT_FOLDERS = {"train": "train", "test": "val"}
VAL_HINT = "val/ must hold one sub-folder per class (wnid); the flat ILSVRC2012 val archive needs sorting first (e.g. the valprep.sh script)."


def class_folders(root: Path, folder: str) -> list[str]:
    """Sorted class folder names under ``root/folder``; errors on a missing, flat or empty split."""
    split_dir = root / folder
    if not split_dir.is_dir():
        raise missing_dataset("imagenet", root, [f"{folder}/<wnid>/*.JPEG"], IMAGENET_URL)
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    loose = [p.name for p in split_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not classes or loose:
        raise missing_dataset("imagenet", split_dir, ["one sub-folder per class (wnid) holding its images"], IMAGENET_URL, VAL_HINT)
    return classes


def scan_imagenet(root: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    """Image paths, labels (index in the sorted wnids) and wnids of one split; both splits must share the classes."""
    folder = SPLIT_FOLDERS[split]
    classes = class_folders(root, folder)
    other = SPLIT_FOLDERS["test" if split == "train" else "train"]
    if (root / other).is_dir():
        other_classes = class_folders(root, other)
        if other_classes != classes:
            diff = sorted(set(classes) ^ set(other_classes))
            raise missing_dataset("imagenet", root, [f"the same class folders in train/ and val/ (differ: {', '.join(diff[:8])})"], IMAGENET_URL)
    paths: list[Path] = []
    labels: list[int] = []
    for label, wnid in enumerate(classes):
        files = sorted(p for p in (root / folder / wnid).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise missing_dataset("imagenet", root / folder / wnid, [f"images ({', '.join(IMAGE_EXTENSIONS)})"], IMAGENET_URL)
        paths += files
        labels += [label] * len(files)
    return paths, labels, classes
