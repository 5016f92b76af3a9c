"""Per-image predictions: compact class ids, their description kept consistent, no pickles, and the order of a
multi-process evaluation put back together."""

import numpy as np
import pytest
import torch

from harness.engine.data import EpochSampler
from harness.engine.predictions import (PredictionsError, class_dtype, decode, encode, interleave, read_predictions,
                                        write_predictions)


@pytest.mark.parametrize("n, world", [(10, 1), (10, 3), (9, 3), (7, 4), (64, 2)])
def test_interleave_undoes_the_evaluation_shards_of_the_real_sampler(n, world):
    shares = [torch.tensor(list(EpochSampler(n, 0, 0, False, rank, world, equal_shards=False)))
              for rank in range(world)]
    assert interleave(shares).tolist() == list(range(n))


def test_class_ids_take_two_bytes_up_to_65536_classes():
    assert class_dtype(1000) == np.uint16 and class_dtype(1 << 16) == np.uint16 and class_dtype(70000) == np.uint32
    assert decode(encode(torch.tensor([0, 999, 5]), 1000), "x").tolist() == [0, 999, 5]
    with pytest.raises(ValueError, match="class ids in"):
        encode(torch.tensor([0, 10]), 10)


def test_a_description_that_does_not_belong_to_the_file_is_refused(tmp_path):
    write_predictions(tmp_path, torch.tensor([1, 2, 3]), 10, split="test", eval_batch=2)
    array, meta = read_predictions(tmp_path)
    assert array.tolist() == [1, 2, 3] and meta["dtype"] == "uint16" and meta["eval_batch"] == 2
    (tmp_path / "predictions.npy").write_bytes(encode(torch.tensor([1, 2, 4]), 10))
    with pytest.raises(PredictionsError, match="does not describe predictions.npy"):
        read_predictions(tmp_path)


def test_a_pickled_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "p.npy"
    np.save(path, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(PredictionsError, match="not a .npy array"):
        decode(path.read_bytes(), str(path))
    np.save(path, np.array([1.5, 2.5]))
    with pytest.raises(PredictionsError, match="expected a 1-D uint16 or uint32 array"):
        decode(path.read_bytes(), str(path))
    assert read_predictions(tmp_path) is None  # a run without predictions reads as None
