"""``train(spec, run_dir)``: train and evaluate one zoo model on one dataset with one recipe, resumably (a spec
with ``weights`` is an eval-only run instead: ``harness.engine.eval_only``).

The run directory receives ``config.json`` (the resolved spec and recipe, derived settings, library
versions, git commit), ``metrics.jsonl`` (one line per epoch), ``train.log`` (``train.rank<r>.log`` for
the other ranks of a distributed run), ``checkpoints/`` (atomic;
the last K and ``best.pt``), after each epoch's evaluation its per-image predictions (``predictions.npy`` with
``predictions.json`` naming the checkpoint that gave them) and at the end ``final.json``
with status ``finished`` or ``diverged`` (it also
records ``eval_batch`` and ``batch_dependent``: whether the model's eval output depends on that batch).
A run whose ``final.json`` exists is returned as is; otherwise it resumes from its newest checkpoint.
On CPU a resumed run ends bit-identical to an uninterrupted one (see harness.engine.data for why).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from harness.atomicfile import atomic_write_text
from harness.audit import batch_dependent
from harness.data import build_dataset, dataset_info, mixup_fn, update_mixup_for_epoch
from harness.data.catalog import resolve_data_root
from harness.engine.checkpoint import CheckpointStore, rng_state, set_rng_state
from harness.engine.data import EpochSampler, SeededSamples, epoch_loader, seeded_subset
from harness.engine.distributed import DistInfo, init_distributed
from harness.engine.evaluate import autocast, evaluate
from harness.engine.loss import TrainLoss
from harness.engine.numerics import run_fast_choice
from harness.engine.optim import LRSchedule, build_optimizer, scaled_lr
from harness.engine.predictions import interleave, write_predictions
from harness.engine.progress import EpochProgress, RunLog
from harness.engine.provenance import code_fingerprint, provenance, run_code
from harness.engine.spec import TrainSpec
from harness.engine.teacher import TeacherError, build_teacher, weights_sha256
from harness.metrics import count_params, measure_energy, peak_memory_mb, topk_correct
from harness.metrics.neurobench_metrics import NEUROBENCH_KEYS
from harness.recipe import accumulation_steps
from zoo.core import to_channels_last, use_fast_paths

# metrics that measure speed, not learning: they differ between otherwise identical runs
TIMING_KEYS = frozenset({"train_img_s", "eval_img_s", "ema_eval_img_s", "epoch_time_s", "wall_time_s",
                         "peak_memory_mb"})


def _append_line(path: Path, line: str) -> None:
    """Append one complete line with a single ``write`` on an ``O_APPEND`` descriptor: a reader sees all of
    it or none of it (a crash can leave only a torn last line, which readers ignore)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint. ``batch`` micro-batches of ``epoch`` are done."""

    epoch: int = 0
    batch: int = 0
    global_step: int = 0
    lr: float = 0.0
    loss_sum: float = 0.0
    correct: float = 0.0
    seen: int = 0
    epoch_time_s: float = 0.0
    wall_time_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_top1: float | None = None
    best_epoch: int | None = None


def train(spec: TrainSpec, run_dir: Path | str) -> dict[str, Any]:
    """Train ``spec`` into ``run_dir`` (resuming if it holds checkpoints) and return ``final.json``'s content."""
    run_dir = Path(run_dir)
    final = run_dir / "final.json"
    if final.exists():
        return json.loads(final.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    if spec.weights is not None:
        from harness.engine.eval_only import evaluate_weights

        return evaluate_weights(spec, run_dir)
    return _Trainer(spec, run_dir).run()


def gradient_norm_failure(grads: dict[str, torch.Tensor], norm: float) -> str:
    """Why the gradient norm ``norm`` is not finite: the first parameter whose gradient is not finite, or, when
    every gradient is finite, that their norm overflows their dtype and which parameter holds the largest one."""
    for name, grad in grads.items():
        if not torch.isfinite(grad).all():
            return f"non-finite gradient norm {norm}: the gradient of {name} is not finite"
    largest = {name: float(grad.abs().max()) for name, grad in grads.items() if grad.numel()}
    name = max(largest, key=largest.__getitem__)
    return (f"non-finite gradient norm {norm}: every gradient is finite but their norm overflows "
            f"{str(next(iter(grads.values())).dtype).removeprefix('torch.')}; largest |gradient| "
            f"{largest[name]:.3g} in {name}")


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def amp_dtype(train_cfg, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a recipe's ``train`` section on ``device``: bf16 everywhere for ``precision: bf16``;
    for ``fast``, what fast mode chose for the device; for ``amp``, bf16 (or fp16) on GPU only; None (fp32)
    otherwise."""
    fast = run_fast_choice(train_cfg, device.type)
    if train_cfg.precision == "bf16" or (fast is not None and fast.precision == "bf16"):
        return torch.bfloat16
    if not train_cfg.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def eval_samples(spec: TrainSpec, recipe, split: str, T: int) -> SeededSamples:
    """The images a trained run evaluates, in the evaluation's order: the split (or its seeded subset)."""
    data = build_dataset(spec.dataset, split, root=spec.data_root, T=T, recipe=recipe.data, **spec.dataset_options)
    return SeededSamples(seeded_subset(data, spec.eval_subset, spec.seed), spec.seed)


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``auto``: this rank's GPU if there is one, else the CPU."""
    if name == "auto":
        return torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(name)


# spec fields that say how a run is executed, not what it computes: they may change between resumes
OPERATIONAL_FIELDS = {"data_root", "device", "num_workers", "checkpoint_every_steps", "keep_last", "energy_images",
                      "weights", "weights_sha256"}


def fingerprint(spec: TrainSpec, recipe_dump: dict[str, Any], teacher_sha256: str | None = None) -> str:
    """A hash of what the run is (spec, resolved recipe and the distillation teacher's weights file, if any): a
    checkpoint only resumes the same run."""
    what = spec.model_dump(mode="json", exclude=OPERATIONAL_FIELDS)
    teacher = {"teacher_sha256": teacher_sha256} if teacher_sha256 else {}
    text = json.dumps({"spec": what, "recipe": recipe_dump, **teacher}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def share_compile_cache(run_dir: Path) -> None:
    """Keep torch.compile's on-disk cache beside the results (``<results>/.cache/torchinductor``) unless the user
    chose one: compiling a model at a shape costs minutes on a CPU, and so every seed, resumed run and node that sees
    the results compiles it once (runs sit at ``<results>/runs/<id>``)."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(run_dir.parent.parent / ".cache" / "torchinductor"))


class _Trainer:
    """One run: built from a spec, then ``run()``."""

    def __init__(self, spec: TrainSpec, run_dir: Path) -> None:
        self.spec, self.run_dir = spec, run_dir
        self.dist = init_distributed()
        log_name = "train.log" if self.dist.is_main else f"train.rank{self.dist.rank}.log"
        self.log = RunLog(run_dir / log_name, echo=self.dist.is_main)
        self.recipe = spec.resolved_recipe()
        self.teacher_weights = self._teacher_weights()
        self.teacher_sha256 = weights_sha256(self.teacher_weights) if self.teacher_weights else None
        self.fingerprint = fingerprint(spec, self.recipe.model_dump(mode="json"), self.teacher_sha256)
        self.code = run_code(spec.model, spec.recipe, self.recipe.model_dump(mode="json"))  # what computes it
        self.device = resolve_device(spec.device, self.dist)
        self.info = dataset_info(spec.dataset)
        self.T = spec.time_steps()
        self._build_model()
        self._build_data()
        self._build_optimization()
        self.store = CheckpointStore(run_dir / "checkpoints", spec.keep_last)

    def _build_model(self) -> None:
        train_cfg = self.recipe.train
        seed_all(self.spec.seed)  # identical initial weights on every rank
        self.model = self.spec.create_model(self.recipe)
        self.fast = run_fast_choice(train_cfg, self.device.type)
        self.channels_last = self.fast.channels_last if self.fast else train_cfg.channels_last
        if self.fast:
            use_fast_paths(self.model)
        self.model.to(self.device)
        if self.channels_last:
            to_channels_last(self.model)
        self.amp_dtype = self._amp_dtype()
        self.ema = self._ema()
        # a kd model trained without distillation leaves its kd head without gradients, as in the official code
        unused_head = getattr(self.model, "kd", False) and self.recipe.distill.type == "none"
        self.ddp = (nn.parallel.DistributedDataParallel(
            self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=unused_head)
            if self.dist.enabled else None)
        net = self.ddp or self.model
        compile_model = self.fast.compile if self.fast else train_cfg.compile
        if compile_model:
            share_compile_cache(self.run_dir)
        self.net = torch.compile(net) if compile_model else net

    def _build_data(self) -> None:
        spec, train_cfg = self.spec, self.recipe.train
        self.eval_split = spec.eval_split or ("val" if "val" in self.info["splits"] else "test")
        args = dict(root=spec.data_root, T=self.T, recipe=self.recipe.data, **spec.dataset_options)
        self.train_set = SeededSamples(seeded_subset(build_dataset(spec.dataset, "train", **args),
                                                     spec.train_subset, spec.seed), spec.seed)
        self.eval_set = eval_samples(spec, self.recipe, self.eval_split, self.T)
        self.batch_size, self.accum = train_cfg.batch_size, accumulation_steps(train_cfg, self.dist.world)
        self.eval_batch_size = train_cfg.eval_batch_size or self.batch_size
        shard = len(EpochSampler(len(self.train_set), spec.seed, 0, True, self.dist.rank, self.dist.world))
        available = min(shard // self.batch_size, spec.limit_train_batches or shard)
        self.batches_per_epoch = available // self.accum * self.accum
        if self.batches_per_epoch == 0:
            raise ValueError(f"{spec.dataset} train split: {shard} samples per rank give no full step of "
                             f"batch_size {self.batch_size} x accum_steps {self.accum}")
        self.mixup = mixup_fn(self.recipe.data, self.info["num_classes"], train_cfg.label_smoothing)

    def _build_optimization(self) -> None:
        optim = self.recipe.optim
        steps_per_epoch = self.batches_per_epoch // self.accum
        effective_batch = self.batch_size * self.accum * self.dist.world
        self.lr = scaled_lr(optim, effective_batch)
        self.schedule = LRSchedule.from_recipe(optim, self.lr, steps_per_epoch, self.spec.reduced_budget())
        self.total_epochs = optim.epochs + optim.cooldown_epochs
        self.optimizer = build_optimizer(self.model, optim, self.lr)
        self.loss_fn = TrainLoss(self.recipe.train, self.recipe.distill)
        self.teacher = self._build_teacher()
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.derived = {
            "T": self.T, "num_classes": self.info["num_classes"], "input_kind": self.info["kind"],
            "eval_split": self.eval_split, "train_samples": len(self.train_set), "eval_samples": len(self.eval_set),
            "batch_size": self.batch_size, "accum_steps": self.accum, "world_size": self.dist.world,
            "effective_batch": effective_batch, "peak_lr": self.lr, "batches_per_epoch": self.batches_per_epoch,
            "steps_per_epoch": steps_per_epoch, "warmup_steps": self.schedule.warmup_steps,
            "lr_ends_at_min": self.spec.reduced_budget(),
            "total_epochs": self.total_epochs, "total_steps": steps_per_epoch * self.total_epochs,
            "device": str(self.device), "amp_dtype": str(self.amp_dtype) if self.amp_dtype else None,
            "channels_last": self.channels_last, "mixup": self.mixup is not None,
            "fast": self.fast.settings() if self.fast else None,
            "params": count_params(self.model), "fingerprint": self.fingerprint,
            "distill": {"type": self.recipe.distill.type, "teacher": self.recipe.distill.teacher,
                        "teacher_sha256": self.teacher_sha256},
        }

    def _teacher_weights(self) -> Path | None:
        """The distillation teacher's weights file under the data root, or None without distillation."""
        distill = self.recipe.distill
        if distill.type == "none":
            return None
        path = self._data_root() / distill.teacher_weights
        if not path.is_file():
            raise TeacherError(f"distill.teacher_weights: expected the teacher {distill.teacher}'s weights at {path}; "
                               f"no such file")
        return path

    def _build_teacher(self) -> nn.Module | None:
        """The frozen distillation teacher, or None without distillation."""
        distill = self.recipe.distill
        if self.teacher_weights is None:
            return None
        if not getattr(self.model, "kd", False):
            raise ValueError(f"distill.type {distill.type!r}: {self.spec.model} has no distillation head; build it "
                             f"with kd=True (model_kwargs) or use distill.type 'none'")
        return build_teacher(distill, self.info["num_classes"], self._data_root(), self.device)

    def _data_root(self) -> Path:
        return resolve_data_root(self.spec.data_root)

    def _amp_dtype(self) -> torch.dtype | None:
        return amp_dtype(self.recipe.train, self.device)

    def _ema(self):
        if self.recipe.train.ema_decay is None:
            return None
        from timm.utils import ModelEmaV3

        return ModelEmaV3(self.model, decay=self.recipe.train.ema_decay)

    # ------------------------------------------------------------------ run
    def run(self) -> dict[str, Any]:
        self._write_config()
        seed_all(self.spec.seed + 7919 * self.dist.rank)  # per-rank streams for mixup and dropout
        state = self._restore()
        self._rewrite_metrics(state.history)
        while state.epoch < self.total_epochs:
            started = time.perf_counter()
            failure = self._train_epoch(state)
            state.wall_time_s += time.perf_counter() - started
            if failure:
                return self._finish(state, "diverged", failure)
            started = time.perf_counter()
            self._end_epoch(state)
            state.wall_time_s += time.perf_counter() - started
        return self._finish(state, "finished", f"trained {state.epoch} epochs, {state.global_step} steps")

    def _write_config(self) -> None:
        if not self.dist.is_main:
            return
        path = self.run_dir / "config.json"
        if path.exists():
            existing = json.loads(path.read_text()).get("resolved", {}).get("fingerprint")
            if existing != self.fingerprint:
                raise ValueError(f"{self.run_dir} holds a different run (fingerprint {existing}, this spec "
                                 f"{self.fingerprint}): use a new run directory")
            return
        config = {"spec": self.spec.model_dump(mode="json"), "recipe": self.recipe.model_dump(mode="json"),
                  "seed": self.spec.seed, "resolved": self.derived, "model_card": self.model.card.as_dict(),
                  "provenance": provenance(*self.code)}
        atomic_write_text(json.dumps(config, indent=1, default=str), path)

    def _rewrite_metrics(self, history: list[dict[str, Any]]) -> None:
        if self.dist.is_main:
            atomic_write_text("".join(json.dumps(line) + "\n" for line in history), self.run_dir / "metrics.jsonl")

    # ------------------------------------------------------------------ training
    def _train_epoch(self, state: Progress) -> str | None:
        """Train the rest of ``state.epoch``; return a divergence message, or None."""
        epoch, accum = state.epoch, self.accum
        update_mixup_for_epoch(self.mixup, self.recipe.data, epoch)
        loader = epoch_loader(self.train_set, self.batch_size, epoch, self.spec.seed, True, self.dist.rank,
                              self.dist.world, state.batch, self.spec.num_workers)
        bar = EpochProgress(self.log, epoch, self.batches_per_epoch, state.batch, enabled=self.dist.is_main)
        self.net.train()
        started = time.perf_counter()
        for position, (x, y) in enumerate(loader, start=state.batch + 1):
            if position > self.batches_per_epoch:
                break
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.mixup is not None:
                x, y = self.mixup(x, y)
            boundary = position % accum == 0
            sync = self.ddp.no_sync() if self.ddp is not None and not boundary else contextlib.nullcontext()
            with sync:
                with autocast(self.device, self.amp_dtype):
                    out = self.net(x, per_step=self.loss_fn.per_step)
                    teacher_logits = self._teacher_logits(x)
                loss = self.loss_fn(out, y, teacher_logits)
                value = float(loss.detach())
                if not math.isfinite(value):
                    bar.close()
                    return f"diverged at step {state.global_step + 1} (epoch {epoch}, loss {value})"
                (self.scaler.scale(loss / accum) if self.scaler else loss / accum).backward()
            logits = out[0] if isinstance(out, tuple) else out  # a kd model's class head, as the official code
            logits = (logits.mean(0) if self.loss_fn.per_step else logits).detach().float()
            state.loss_sum += value * len(x)
            state.correct += topk_correct(logits, y, (1,))[1]
            state.seen += len(x)
            if boundary:
                failure = self._optimizer_step(state)
                if failure:
                    bar.close()
                    return failure
                state.batch = position
                every = self.spec.checkpoint_every_steps
                if every and state.global_step % every == 0 and position < self.batches_per_epoch:
                    now = time.perf_counter()
                    state.epoch_time_s += now - started
                    started = now
                    self._save(state)
            bar.update(position, {"loss": state.loss_sum / state.seen, "top1": 100 * state.correct / state.seen,
                                  "lr": state.lr})
        state.epoch_time_s += time.perf_counter() - started
        bar.close()
        return None

    def _teacher_logits(self, x: torch.Tensor) -> torch.Tensor | None:
        if self.teacher is None:
            return None
        with torch.no_grad():
            return self.teacher(x)

    def _optimizer_step(self, state: Progress) -> str | None:
        """One update; returns why training must stop when the gradient is no longer finite.

        Without a GradScaler (which skips such steps itself) an infinite gradient norm means Adam's second
        moment overflows and every affected weight silently stops moving, so the run is stopped as diverged.
        """
        state.lr = self.schedule(state.global_step)
        for group in self.optimizer.param_groups:
            group["lr"] = state.lr
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grads = {name: p.grad for name, p in self.model.named_parameters() if p.grad is not None}
        norm = float(nn.utils.get_total_norm(list(grads.values()))) if grads else 0.0
        if self.scaler is None and not math.isfinite(norm):
            return f"diverged at step {state.global_step + 1} ({gradient_norm_failure(grads, norm)})"
        if self.recipe.optim.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.optim.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        state.global_step += 1
        if self.ema is not None:
            self.ema.update(self.model, step=state.global_step)
        return None

    def _end_epoch(self, state: Progress) -> None:
        """Evaluate, record the epoch's metrics, checkpoint, then start the next epoch."""
        sums = torch.tensor([state.loss_sum, state.correct, state.seen], dtype=torch.float64)
        if self.dist.enabled:
            sums = sums.to(self.device)
            dist.all_reduce(sums)
        loss_sum, correct, seen = sums.tolist()
        line: dict[str, Any] = {"epoch": state.epoch, "step": state.global_step, "lr": state.lr,
                                "train_loss": loss_sum / seen, "train_top1": 100 * correct / seen}
        predictions: list[torch.Tensor] = []
        line.update({f"eval_{k}": v for k, v in self._evaluate(self.model, predictions).items()})  # eval_images: n
        if self.ema is not None:
            line.update({f"ema_eval_{k}": v for k, v in self._evaluate(self.ema.module).items() if k != "images"})
        line["train_img_s"] = seen / max(state.epoch_time_s, 1e-9)
        line["epoch_time_s"] = state.epoch_time_s
        best = state.best_top1 is None or line["eval_top1"] > state.best_top1
        if best:
            state.best_top1, state.best_epoch = line["eval_top1"], state.epoch
        state.history.append(line)
        state.epoch, state.batch = state.epoch + 1, 0
        state.loss_sum = state.correct = 0.0
        state.seen, state.epoch_time_s = 0, 0.0
        checkpoint = self._save(state, best=best)
        everything = self._all_predictions(predictions)
        if checkpoint is not None:
            write_predictions(self.run_dir, everything, self.info["num_classes"], split=self.eval_split,
                              eval_batch=self.eval_batch_size, world_size=self.dist.world, epoch=state.epoch - 1,
                              checkpoint=checkpoint.name)
        if self.dist.is_main:
            _append_line(self.run_dir / "metrics.jsonl", json.dumps(line))
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in line.items()}
        self.log(f"epoch {line['epoch']} done: {shown}")

    def _all_predictions(self, mine: list[torch.Tensor]) -> torch.Tensor:
        """The evaluation's predictions of every rank, in the evaluation's order (every rank calls this)."""
        local = torch.cat(mine) if mine else torch.empty(0, dtype=torch.long)
        if not self.dist.enabled:
            return local
        shares: list[torch.Tensor | None] = [None] * self.dist.world
        dist.all_gather_object(shares, local)
        return interleave(shares)

    def _evaluate(self, model: nn.Module, predictions: list[torch.Tensor] | None = None) -> dict[str, float]:
        loader = epoch_loader(self.eval_set, self.eval_batch_size, 0, self.spec.seed, False, self.dist.rank,
                              self.dist.world, num_workers=self.spec.num_workers)
        return evaluate(model, loader, self.device, self.amp_dtype, self.spec.limit_eval_batches,
                        self.channels_last, predictions)

    # ------------------------------------------------------------------ checkpoints
    def _save(self, state: Progress, best: bool = False) -> Path | None:
        """Checkpoint the run (rank 0 writes); returns the checkpoint's path on rank 0, else None."""
        rngs = [rng_state()]
        if self.dist.enabled:
            rngs = [None] * self.dist.world
            dist.all_gather_object(rngs, rng_state())
        if not self.dist.is_main:
            return None
        checkpoint = {
            "fingerprint": self.fingerprint,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "ema": self.ema.state_dict() if self.ema else None,
            "rng": rngs,
            "progress": asdict(state),
        }
        path = self.store.save(checkpoint, state.epoch, state.batch, best=best)
        self.log(f"checkpoint {path.name} (step {state.global_step})")
        return path

    def _restore(self) -> Progress:
        checkpoint = self.store.load_latest()
        if checkpoint is None:
            return Progress()
        if checkpoint["fingerprint"] != self.fingerprint:
            raise ValueError(f"{self.store.dir}/{checkpoint['loaded_from']} belongs to a different run "
                             f"(fingerprint {checkpoint['fingerprint']} != {self.fingerprint})")
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.scaler is not None and checkpoint["scaler"] is not None:
            self.scaler.load_state_dict(checkpoint["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(checkpoint["ema"])
        rngs = checkpoint["rng"]
        if len(rngs) != self.dist.world:
            self.log(f"world size changed ({len(rngs)} -> {self.dist.world}): RNG streams restart from rank 0's")
        set_rng_state(rngs[self.dist.rank] if len(rngs) == self.dist.world else rngs[0])
        state = Progress(**checkpoint["progress"])
        for skipped in checkpoint["skipped"]:
            self.log(f"skipped unreadable checkpoint {skipped}")
        self.log(f"resumed from {checkpoint['loaded_from']}: epoch {state.epoch}, batch {state.batch}, "
                 f"step {state.global_step}")
        return state

    # ------------------------------------------------------------------ end
    def _finish(self, state: Progress, status: str, message: str) -> dict[str, Any]:
        final: dict[str, Any] = {
            "status": status, "message": message, "epochs_completed": state.epoch,
            "global_step": state.global_step, "best_top1": state.best_top1, "best_epoch": state.best_epoch,
            "last": state.history[-1] if state.history else None, "params": count_params(self.model),
            "wall_time_s": state.wall_time_s, "peak_memory_mb": peak_memory_mb(self.device),
            "eval_batch": self.eval_batch_size, "batch_dependent": batch_dependent(self.model),
            "code_fingerprint": code_fingerprint(*self.code),
        }
        if status == "finished" and self.spec.energy_images and self.dist.is_main:
            final["energy"], final["neurobench"] = self._energy()
        self.log(f"{status}: {message}")
        if self.dist.is_main:
            atomic_write_text(json.dumps(final, indent=1), self.run_dir / "final.json")
        return final

    def _energy(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Energy per image in both conventions and NeuroBench's metrics, on the whole eval set or a seeded
        subset of ``energy_images`` of it; the full audit goes to ``energy.json``."""
        count = None if self.spec.energy_images == "all" else self.spec.energy_images
        images = seeded_subset(self.eval_set, count, self.spec.seed)
        loader = torch.utils.data.DataLoader(images, batch_size=self.eval_batch_size, shuffle=False)
        # counted as the model runs in exact mode: fast mode's first layer would run once, not T times
        use_fast_paths(self.model, enabled=False)
        report = measure_energy(self.model, (x.to(self.device) for x, _ in loader), self.T, neurobench=True)
        neurobench = report.neurobench
        atomic_write_text(json.dumps(report.as_dict(), indent=1), self.run_dir / "energy.json")
        return report.summary(), {key: neurobench[key] for key in NEUROBENCH_KEYS}
