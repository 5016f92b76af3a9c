"""The training/evaluation engine shared by every model: ``train(spec, run_dir)`` and ``evaluate(model, loader)``."""

from harness.engine.evaluate import evaluate
from harness.engine.spec import TrainSpec
from harness.engine.trainer import TIMING_KEYS, train

__all__ = ["TrainSpec", "train", "evaluate", "TIMING_KEYS"]
