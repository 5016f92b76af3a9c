"""What each dataset is: classes, input shape, kind, default normalisation and where to obtain it."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# measured on sklearn's digits scaled to [0, 1] and upsampled bilinearly to 32x32
DIGITS_MEAN = (0.305, 0.305, 0.305)
DIGITS_STD = (0.324, 0.324, 0.324)

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html (the 'python version' archives)"
IMAGENET_URL = "https://image-net.org/download.php (ILSVRC2012 train and val, val sorted into class folders)"
DVS128_URL = "https://research.ibm.com/interactive/dvsgesture/ (DvsGesture.tar.gz)"
CIFAR10DVS_URL = "https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671 (one zip per class)"
SKLEARN_URL = "ships with scikit-learn (sklearn.datasets.load_digits); nothing to download"


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one dataset name."""

    name: str
    kind: Literal["static", "dvs"]
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W) of one image / one frame
    mean: tuple[float, ...] | None  # default normalisation (None: event counts, not normalised)
    std: tuple[float, ...] | None
    download: str
    train_samples: int  # samples in the train split as this harness builds it (scales a run's expected cost)
    default_T: int | None = None  # frames per sample for event datasets
    splits: tuple[str, ...] = ("train", "test")


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("digits", "static", 10, (3, 32, 32), DIGITS_MEAN, DIGITS_STD, SKLEARN_URL, 1438),
        DatasetInfo("digits_dvs", "dvs", 10, (2, 16, 16), None, None, SKLEARN_URL + " (events emulated)", 1438, 8),
        DatasetInfo("cifar10", "static", 10, (3, 32, 32), CIFAR10_MEAN, CIFAR10_STD, CIFAR_URL, 50000),
        DatasetInfo("cifar100", "static", 100, (3, 32, 32), CIFAR100_MEAN, CIFAR100_STD, CIFAR_URL, 50000),
        DatasetInfo(
            "imagenet", "static", 1000, (3, 224, 224), IMAGENET_MEAN, IMAGENET_STD, IMAGENET_URL, 1281167,
            splits=("train", "val", "test"),
        ),
        DatasetInfo("dvs128", "dvs", 11, (2, 128, 128), None, None, DVS128_URL, 1176, 16),
        DatasetInfo("cifar10dvs", "dvs", 10, (2, 128, 128), None, None, CIFAR10DVS_URL, 9000, 16),
    )
}


# datasets whose pipeline sizes images (or, for the emulated digits, the sensor) by the recipe's input_size;
# the recorded event datasets keep their sensor size unless the recipe sets dvs_resize
SIZED_BY_INPUT_SIZE = frozenset({"digits", "digits_dvs", "cifar10", "cifar100", "imagenet"})


def model_input_shape(name: str, recipe: Any | None = None) -> tuple[int, int, int]:
    """(C, H, W) of one image (one frame for event data) as the model receives it under ``recipe`` (a
    ``DataRecipe``): the catalog's ``input_shape`` is the stored size, e.g. digits are stored at 32x32 but the
    digits recipe feeds 16x16; event data gets ``dvs_channels`` channels."""
    info = get_info(name)
    channels, native = info.input_shape[0], info.input_shape[-1]
    size = (recipe.input_size if recipe is not None and name in SIZED_BY_INPUT_SIZE else None) or native
    if info.kind == "dvs":
        size = (recipe.dvs_resize if recipe is not None else None) or size
        channels = recipe.dvs_channels if recipe is not None else channels
    return channels, size, size


def default_data_dir() -> Path:
    """Where datasets are looked for and generated data is cached: ``$SPIKEBENCH_DATA`` or ``~/.cache/spikebench``."""
    return Path(os.environ.get("SPIKEBENCH_DATA") or Path.home() / ".cache" / "spikebench")


def resolve_data_root(given: str | Path | None) -> Path:
    """The data root a command or run uses: the one given (``--data-root``), else ``default_data_dir()``."""
    return Path(given) if given else default_data_dir()


def list_datasets() -> list[str]:
    """Names that ``build_dataset`` serves."""
    return sorted(DATASETS)


def get_info(name: str) -> DatasetInfo:
    """The ``DatasetInfo`` of ``name``; unknown names list the known ones."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; available: {', '.join(list_datasets())}")
    return DATASETS[name]


def dataset_info(name: str) -> dict[str, Any]:
    """Facts about ``name`` as a plain dict (num_classes, input_shape, kind, mean, std, download, default_T)."""
    return asdict(get_info(name))
