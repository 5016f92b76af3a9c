"""Event data: split-by-number framing, the DVS emulator, digits_dvs, spikingjelly and tonic layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_formats import random_events, write_spikingjelly_events, write_tonic_gesture
from scipy import ndimage

from harness.data import DatasetError, build_dataset, dataset_info
from harness.data.build import digits_dvs_config
from harness.data.digits import load_digits_raw, stratified_split, upsample
from harness.data.digits_dvs import DigitsDVSConfig, load_or_generate, loop_offsets
from harness.data.dvs_emulator import SensorConfig, emulate_dvs
from harness.data.events import frame_offsets_by_number, frame_some_by_number, frames_by_number
from harness.recipe import DataRecipe, load_recipe

sj_utils = pytest.importorskip("spikingjelly.datasets.utils")


@pytest.mark.parametrize("n", [0, 5, 16, 1003])
def test_framing_equals_spikingjelly(n):
    events = random_events(np.random.default_rng(n), n, size=32)
    ours = frames_by_number(events["x"], events["y"], events["p"], 7, 32, 32)
    theirs = sj_utils.integrate_events_by_fixed_frames_number(events, "number", 7, 32, 32)
    assert ours.dtype == np.float32 and ours.shape == (7, 2, 32, 32)
    assert np.array_equal(ours, theirs)


def test_batched_framing_equals_per_sample():
    rng = np.random.default_rng(3)
    streams = [random_events(rng, n, size=16) for n in (10, 0, 33)]
    offsets = np.cumsum([0] + [len(s["x"]) for s in streams])
    cat = {k: np.concatenate([s[k] for s in streams]) for k in ("x", "y", "p")}
    batched = frame_offsets_by_number(cat["x"], cat["y"], cat["p"], offsets, 4, 16, 16)
    for i, s in enumerate(streams):
        assert np.array_equal(batched[i], frames_by_number(s["x"], s["y"], s["p"], 4, 16, 16))


def test_framing_some_streams_equals_framing_all_then_selecting():
    rng = np.random.default_rng(4)
    streams = [random_events(rng, n, size=16) for n in (10, 0, 33, 7, 21)]
    offsets = np.cumsum([0] + [len(s["x"]) for s in streams])
    cat = {k: np.concatenate([s[k] for s in streams]) for k in ("x", "y", "p")}
    every = frame_offsets_by_number(cat["x"], cat["y"], cat["p"], offsets, 4, 16, 16)
    samples = np.array([4, 0, 1, 2])
    some = frame_some_by_number(cat["x"], cat["y"], cat["p"], offsets, samples, 4, 16, 16)
    assert np.array_equal(some, every[samples])


def _record_digits(n: int, seed: int = 0):
    """Record the first n digits with the default emulator settings; also return the picture and stimulus."""
    cfg = DigitsDVSConfig()
    images = load_digits_raw()[0][:n]
    canvas = np.zeros((n, 16, 16), np.float32)
    canvas[:, 2:14, 2:14] = upsample(images, 12)
    offsets = loop_offsets(cfg)
    frames = np.stack([ndimage.shift(canvas, (0, *o), order=1) for o in offsets], 1)
    events = emulate_dvs(lambda k: frames[:, k], len(offsets), n, 1e6 / cfg.refresh_hz, cfg.sensor, np.random.default_rng(seed))
    return events, canvas, frames


def test_emulator_events_look_like_a_dvs_recording():
    events, canvas, frames = _record_digits(40)
    counts = np.zeros((40, 16, 16))
    for i in range(40):
        e = events.sample(i)
        assert np.all(np.diff(e["t"]) >= 0) and e["t"].min() >= 0 and e["t"].max() < 400_000  # sorted microseconds
        np.add.at(counts[i], (e["y"], e["x"]), 1)
    per_sample = np.diff(events.offsets)
    assert 1_000 < per_sample.min() and per_sample.max() < 20_000  # ~5k events for 256 pixels over 0.4 s
    assert 0.35 < events.p.mean() < 0.65  # both polarities
    gradient = np.hypot(*np.gradient(canvas, axis=(1, 2)))
    edges, flat = gradient > np.quantile(gradient, 0.9), gradient < 0.02
    assert counts[edges].mean() > 4 * counts[flat].mean()  # events concentrate on edges
    never_changes = np.abs(np.diff(frames, axis=1)).sum(1) == 0
    assert counts[never_changes].mean() < 0.5  # only background noise where the stimulus is static


def test_emulator_is_deterministic_by_seed():
    a, _, _ = _record_digits(5, seed=1)
    b, _, _ = _record_digits(5, seed=1)
    c, _, _ = _record_digits(5, seed=2)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("t", "x", "y", "p", "offsets"))
    assert not np.array_equal(a.offsets, c.offsets)


def test_emulator_refractory_period_and_thresholds():
    sensor = SensorConfig(height=1, width=1, refractory_us=1000, noise_rate_hz=0.0, threshold_mismatch=0.0)
    step = lambda k: np.full((1, 1, 1), 1.0 if k >= 1 else 0.0, np.float32)  # noqa: E731  black -> white
    events = emulate_dvs(step, 3, 1, 1e6 / 60, sensor, np.random.default_rng(0))
    assert np.all(events.p == 1) and np.all(np.diff(events.t) >= 1000)
    assert abs(len(events.t) - np.log(1 / 0.05) / 0.2) <= 1.5  # log contrast / threshold ON events


def test_digits_dvs_dataset_cached_and_framed(tmp_path):
    train = build_dataset("digits_dvs", "train", root=tmp_path, T=6, size=8)
    test = build_dataset("digits_dvs", "test", root=tmp_path, T=6, size=8)
    assert (len(train), len(test)) == (1438, 359)
    assert dataset_info("digits_dvs")["train_samples"] == len(train)
    assert np.array_equal(test.labels, build_dataset("digits", "test").labels)
    x, y = test[0]
    assert x.shape == (6, 2, 8, 8) and x.dtype == torch.float32 and isinstance(y, int)
    assert x[:, 0].sum() > 0 and x[:, 1].sum() > 0
    per_frame, n = x.sum((1, 2, 3)), int(x.sum().item())
    assert torch.all(per_frame[:-1] == n // 6) and per_frame[-1] == n // 6 + n % 6  # split by number
    cached = list((tmp_path / "digits_dvs").glob("*.npz"))
    assert len(cached) == 1
    again = build_dataset("digits_dvs", "test", root=tmp_path, T=6, recipe=DataRecipe(input_size=8))  # sensor from recipe
    assert torch.equal(again[0][0], x)
    cached[0].write_bytes(b"damaged")  # a damaged cache entry is regenerated, identically
    events, labels = load_or_generate(digits_dvs_config(8), tmp_path)
    assert np.array_equal(labels, load_digits_raw()[1]) and len(events.offsets) == 1798
    reframed = frame_offsets_by_number(events.x, events.y, events.p, events.offsets, 6, 8, 8)
    assert np.array_equal(reframed[_first_test_index()], x.numpy())


def _first_test_index() -> int:
    """Index (among all digits) of the first test sample."""
    return int(stratified_split(load_digits_raw()[1])["test"][0])


def test_sj_dvs128_layout_labels_and_frames(tmp_path):
    written = write_spikingjelly_events(tmp_path, "dvs128", per_class=2)
    train = build_dataset("dvs128", "train", root=tmp_path, T=4)
    test = build_dataset("dvs128", "test", root=tmp_path, T=4)
    assert (len(train), len(test)) == (22, 22)
    assert train.classes == ["0", "1", "10", "2", "3", "4", "5", "6", "7", "8", "9"]  # spikingjelly's label order
    index = list(train.sources).index(tmp_path / "events_np" / "train" / "10" / "10_1.npz")
    x, y = train[index]
    assert y == 2 and x.shape == (4, 2, 128, 128) and x.dtype == torch.float32
    events = written[tmp_path / "events_np" / "train" / "10" / "10_1.npz"]
    assert np.array_equal(x.numpy(), sj_utils.integrate_events_by_fixed_frames_number(events, "number", 4, 128, 128))


def test_sj_cifar10dvs_split_and_prefers_frames(tmp_path):
    write_spikingjelly_events(tmp_path, "cifar10dvs", per_class=10)
    train = build_dataset("cifar10dvs", "train", root=tmp_path, T=3)
    test = build_dataset("cifar10dvs", "test", root=tmp_path, T=3, resize=64)
    assert (len(train), len(test)) == (90, 10)
    assert [p.name for p in test.sources][:2] == ["airplane_9.npz", "automobile_9.npz"]  # last 10% of each class
    assert test[0][0].shape == (3, 2, 64, 64)
    frames_dir = tmp_path / "frames_number_3_split_by_number" / "airplane"
    for cls in train.classes:
        (frames_dir.parent / cls).mkdir(parents=True)
        for i in range(10):
            np.savez(frames_dir.parent / cls / f"{cls}_{i}.npz", frames=np.full((3, 2, 128, 128), float(i)))
    pre = build_dataset("cifar10dvs", "test", root=tmp_path, T=3)
    assert pre[0][0].max().item() == 9.0
    recipe = load_recipe("sdt_cifar10dvs").data
    assert build_dataset("cifar10dvs", "train", root=tmp_path, T=3, recipe=recipe)[0][0].shape == (3, 2, 64, 64)


def test_sj_layout_errors(tmp_path):
    with pytest.raises(DatasetError, match="events_np/train/<class>") as err:
        build_dataset("dvs128", "train", root=tmp_path)
    assert "research.ibm.com" in str(err.value)
    write_spikingjelly_events(tmp_path, "cifar10dvs", per_class=10)
    victim = tmp_path / "events_np" / "cat" / "cat_0.npz"
    victim.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError, match="cat_0.npz is malformed"):
        build_dataset("cifar10dvs", "train", root=tmp_path, T=2)[27]
    np.savez(victim, t=np.arange(3), x=np.array([1, 2, 300]), y=np.zeros(3), p=np.ones(3))
    with pytest.raises(DatasetError, match="outside the 128x128 sensor"):
        build_dataset("cifar10dvs", "train", root=tmp_path, T=2)[27]
    for f in (tmp_path / "events_np" / "truck").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="truck"):
        build_dataset("cifar10dvs", "train", root=tmp_path, T=2)


def test_tonic_gesture_layout(tmp_path):
    pytest.importorskip("tonic")
    written = write_tonic_gesture(tmp_path)
    ds = build_dataset("dvs128", "train", root=tmp_path, T=5, layout="tonic")
    assert len(ds) == 110 and ds.classes[2] == "10"
    assert np.bincount(ds.labels).tolist() == [10] * 11
    i = int(np.flatnonzero(ds.labels == 2)[0])  # spikingjelly label 2 = gesture 10
    x, y = ds[i]
    candidates = [ev for path, ev in written.items() if path.name == "10.npy"]
    assert any(np.array_equal(x.numpy(), frames_by_number(ev[:, 0], ev[:, 1], ev[:, 2], 5, 128, 128)) for ev in candidates)


def test_tonic_layout_incomplete_is_refused_before_tonic_downloads(tmp_path):
    pytest.importorskip("tonic")
    write_tonic_gesture(tmp_path, users=5)  # 55 files: tonic would consider this incomplete and download
    with pytest.raises(DatasetError, match=">= 100 .npy files"):
        build_dataset("dvs128", "train", root=tmp_path, layout="tonic")
    with pytest.raises(DatasetError, match="CIFAR10DVS.zip"):
        build_dataset("cifar10dvs", "train", root=tmp_path, layout="tonic")
