"""digits, CIFAR-10/100 and ImageNet through the real readers, on fixtures in the real on-disk formats."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from data_formats import CIFAR10_NAMES, write_cifar10, write_cifar100, write_imagenet

from harness.data import DatasetError, build_dataset, dataset_info, list_datasets
from harness.data.catalog import CIFAR100_MEAN, CIFAR100_STD, DIGITS_MEAN
from harness.recipe import DataRecipe, load_recipe


def test_catalogue_names_and_facts():
    assert list_datasets() == ["cifar10", "cifar100", "cifar10dvs", "digits", "digits_dvs", "dvs128", "imagenet"]
    info = dataset_info("cifar10dvs")
    assert (info["num_classes"], info["input_shape"], info["kind"]) == (10, (2, 128, 128), "dvs")
    assert "figshare" in info["download"]
    assert dataset_info("imagenet")["num_classes"] == 1000
    with pytest.raises(KeyError, match="available: cifar10"):
        dataset_info("mnist")


def test_bad_split_and_unknown_option_are_rejected():
    with pytest.raises(ValueError, match="unknown split 'val'"):
        build_dataset("digits", "val")
    with pytest.raises(TypeError, match="unknown options"):
        build_dataset("digits", "train", sise=16)


def test_digits_shapes_split_and_labels():
    train, test = build_dataset("digits", "train"), build_dataset("digits", "test")
    assert (len(train), len(test)) == (1438, 359)
    assert dataset_info("digits")["train_samples"] == len(train)
    x, y = train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    # stratified: every class has 20% (rounded) of its samples in test
    counts_test, counts_all = np.bincount(test.labels), np.bincount(np.concatenate([train.labels, test.labels]))
    assert np.array_equal(counts_test, np.round(counts_all * 0.2).astype(int))
    # the eval pipeline normalises with the digits constants: the raw pixel 0 maps to -mean/std
    assert x.min().item() == pytest.approx(-DIGITS_MEAN[0] / 0.324, abs=1e-3)


@pytest.mark.parametrize("source", ["bundled file", "scikit-learn's loader"])
def test_digits_are_scikit_learns_whichever_way_they_are_read(monkeypatch, source):
    from sklearn.datasets import load_digits

    from harness.data import digits

    if source != "bundled file":
        monkeypatch.setattr(digits, "bundled_digits_file", lambda: None)
    else:
        assert digits.bundled_digits_file() is not None, "this scikit-learn keeps digits.csv.gz where it is looked for"
    digits.load_digits_raw.cache_clear()
    try:
        images, labels = digits.load_digits_raw()
    finally:
        digits.load_digits_raw.cache_clear()
    bunch = load_digits()
    assert images.dtype == np.float32 and labels.dtype == np.int64
    assert np.array_equal(images, (bunch.images / 16.0).astype(np.float32))
    assert np.array_equal(labels, bunch.target)


def test_digits_size_follows_option_then_recipe_and_is_deterministic():
    assert build_dataset("digits", "test", size=16)[3][0].shape == (3, 16, 16)
    assert build_dataset("digits", "test", recipe=DataRecipe(input_size=24))[3][0].shape == (3, 24, 24)
    a, b = build_dataset("digits", "test")[7][0], build_dataset("digits", "test")[7][0]
    assert torch.equal(a, b)


def test_cifar10_python2_pickles(tmp_path):
    written = write_cifar10(tmp_path)
    with (tmp_path / "cifar-10-batches-py" / "test_batch").open("rb") as f:
        assert b"data" in pickle.load(f, encoding="bytes")  # the fixture really has Python-2 (bytes) keys
    train = build_dataset("cifar10", "train", root=tmp_path)
    test = build_dataset("cifar10", "test", root=tmp_path / "cifar-10-batches-py")
    assert (len(train), len(test)) == (20, 4)
    assert train.classes == [n.decode() for n in CIFAR10_NAMES]
    data, labels = written["data_batch_2"]
    x, y = build_dataset("cifar10", "train", root=tmp_path, recipe=None)[5]  # first image of batch 2
    assert y == labels[1] and x.shape == (3, 32, 32) and x.dtype == torch.float32
    red = data[1, :1024].reshape(32, 32) / 255.0
    assert np.allclose(x[0].numpy() * 0.2470 + 0.4914, red, atol=1e-5)  # RGB planes, CIFAR-10 normalisation


def test_cifar100_str_keys_and_own_normalisation(tmp_path):
    written = write_cifar100(tmp_path, str_keys=True)
    test = build_dataset("cifar100", "test", root=tmp_path)
    x, y = test[2]
    data, fine = written["test"]
    assert y == fine[2] and len(test.classes) == 100
    green = data[2, 1024:2048].reshape(32, 32) / 255.0
    assert np.allclose(x[1].numpy() * CIFAR100_STD[1] + CIFAR100_MEAN[1], green, atol=1e-5)


def test_cifar_recipe_pipeline_augments_train_only(tmp_path):
    write_cifar10(tmp_path)
    recipe = load_recipe("qkformer_cifar").data
    train = build_dataset("cifar10", "train", root=tmp_path, recipe=recipe)
    test = build_dataset("cifar10", "test", root=tmp_path, recipe=recipe)
    torch.manual_seed(0)
    draws = torch.stack([train[0][0] for _ in range(6)])
    assert draws.shape == (6, 3, 32, 32) and not all(torch.equal(draws[0], d) for d in draws[1:])
    assert torch.equal(test[0][0], test[0][0])


def test_cifar_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DatasetError) as err:
        build_dataset("cifar10", "train", root=tmp_path)
    assert "cifar-10-batches-py" in str(err.value) and "cs.toronto.edu" in str(err.value)
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3 \\(missing\\)"):
        build_dataset("cifar10", "train", root=tmp_path)
    assert len(build_dataset("cifar10", "test", root=tmp_path)) == 4  # the test split is complete
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(DatasetError, match="test_batch is malformed"):
        build_dataset("cifar10", "test", root=tmp_path)


def test_imagenet_imagefolder_with_jpegs(tmp_path):
    write_imagenet(tmp_path)
    train = build_dataset("imagenet", "train", root=tmp_path, recipe=load_recipe("qkformer_in1k").data)
    val = build_dataset("imagenet", "val", root=tmp_path, recipe=load_recipe("qkformer_in1k").data)
    assert (len(train), len(val)) == (6, 3)
    assert val.classes == ["n01440764", "n01443537", "n01484850"] and list(val.labels) == [0, 1, 2]
    x, y = val[1]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and y == 1
    # class 1's gradient lives in the green channel: it dominates after decoding
    means = x.mean((1, 2)) * torch.tensor([0.229, 0.224, 0.225]) + torch.tensor([0.485, 0.456, 0.406])
    assert means.argmax().item() == 1
    assert train[0][0].shape == (3, 224, 224)
    plain = build_dataset("imagenet", "train", root=tmp_path)  # no recipe: the eval pipeline for both splits
    assert plain[0][0].shape == (3, 224, 224) and torch.equal(plain[0][0], plain[0][0])


def test_imagenet_errors(tmp_path):
    with pytest.raises(DatasetError, match="image-net.org"):
        build_dataset("imagenet", "train", root=tmp_path)
    write_imagenet(tmp_path)
    (tmp_path / "val" / "loose.JPEG").write_bytes(b"")
    with pytest.raises(DatasetError, match="valprep"):
        build_dataset("imagenet", "val", root=tmp_path)
    (tmp_path / "val" / "loose.JPEG").unlink()
    (tmp_path / "val" / "n09999999").mkdir()
    with pytest.raises(DatasetError, match="n09999999"):
        build_dataset("imagenet", "train", root=tmp_path)
    (tmp_path / "val" / "n09999999").rmdir()
    bad = next((tmp_path / "val" / "n01443537").iterdir())
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot decode image"):
        build_dataset("imagenet", "val", root=tmp_path)[1]
