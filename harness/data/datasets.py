"""The torch Datasets that ``build_dataset`` returns: images from arrays or files, event clips from arrays or files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from harness.data.errors import DatasetError


class _Labelled(Dataset):
    """Common part: integer labels, class names, a transform."""

    def __init__(self, labels: Sequence[int], classes: Sequence[str], transform: Callable) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.targets = self.labels  # the name torchvision users expect
        self.classes = list(classes)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)


class ImageArrayDataset(_Labelled):
    """Images held in memory as uint8 ``[N, H, W, 3]``; yields ``(transform(PIL image), label)``."""

    def __init__(self, images: np.ndarray, labels: Sequence[int], classes: Sequence[str], transform: Callable) -> None:
        super().__init__(labels, classes, transform)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or len(images) != len(self.labels):
            raise ValueError(f"images must be uint8 [N, H, W, 3] with N = {len(self.labels)}, got {images.dtype} {images.shape}")
        self.images = images

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


class ImageFileDataset(_Labelled):
    """Images decoded from files with PIL (converted to RGB); yields ``(transform(image), label)``."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int], classes: Sequence[str], transform: Callable) -> None:
        super().__init__(labels, classes, transform)
        self.paths = list(paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            with Image.open(self.paths[i]) as img:
                rgb = img.convert("RGB")
        except OSError as err:
            raise DatasetError(f"cannot decode image {self.paths[i]}: {err}; the file is corrupt or not an image") from None
        return self.transform(rgb), int(self.labels[i])


class ClipArrayDataset(_Labelled):
    """Event clips framed in memory, ``[N, T, 2, H, W]`` counts; yields ``(transform(float32 [T, 2, H, W]), label)``."""

    def __init__(self, frames: np.ndarray, labels: Sequence[int], classes: Sequence[str], transform: Callable) -> None:
        super().__init__(labels, classes, transform)
        self.frames = frames

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(torch.from_numpy(np.asarray(self.frames[i], dtype=np.float32))), int(self.labels[i])


class ClipFileDataset(_Labelled):
    """Event clips read per sample by ``load(source) -> float32 [T, 2, H, W]`` (a file per sample)."""

    def __init__(
        self, sources: Sequence[Path], labels: Sequence[int], classes: Sequence[str], load: Callable[[Path], np.ndarray], transform: Callable
    ) -> None:
        super().__init__(labels, classes, transform)
        self.sources = list(sources)
        self.load = load

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(torch.from_numpy(self.load(self.sources[i]))), int(self.labels[i])
