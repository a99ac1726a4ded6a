"""The trainer: bf16 autocast, torch.compile, fused AdamW, warmup + decay, accumulation, DDP, resume.

It is generic: a model whose `forward(**batch)` returns a dict with a scalar `"loss"` (other scalar
entries are logged as metrics), and data that yields batches (dicts of tensors). Speed rules:
no host synchronisation inside a step (metrics stay on the device until a log step), batches of a
fixed shape (torch.compile never recompiles), pinned memory with non-blocking copies, and a fused
optimizer on CUDA. `Trainer.train_step` is the step-level API a benchmark loop calls directly.

Several GPUs or nodes: launch the same command with `torchrun --nproc_per_node=N ...`; each process
reads RANK / WORLD_SIZE / LOCAL_RANK, wraps the model in DistributedDataParallel and draws its own
slice of every global batch. Checkpoints hold model, optimizer, scheduler, data position and every
rank's random state, so a resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vbert.config import PretrainConfig
from vbert.core.distributed import init_distributed, unwrap
from vbert.core.graceful_stop import GracefulStop
from vbert.core.manifest import atomic_write_bytes
from vbert.core.progress import progress
from vbert.errors import DataError, VbertError
from vbert.pretraining.checkpoint import (
    changed_settings,
    checkpoint_name,
    clear_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from vbert.pretraining.optim import autocast_dtype, build_optimizer, lr_factor

Batch = dict[str, torch.Tensor]
Callback = Callable[["Trainer"], None]
RESUME_MODES = ("auto", "require", "if-same", "never")
CHECKPOINT_KEYS = (
    "step",
    "batches_seen",
    "model",
    "optimizer",
    "scheduler",
    "data",
    "rng",
)  # what resuming reads


class TrainingDiverged(VbertError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint is kept."""


class TrainingStopped(VbertError):
    """A stop signal (SIGTERM, Ctrl-C) ended training between two steps, after writing a checkpoint."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # 128 + the signal number, as if the signal had ended the process


def read_metrics(folder: str | Path) -> list[dict[str, float]]:
    """The rows a training run logged in `folder/metrics.jsonl`, in order (empty when it has none yet)."""
    path = Path(folder) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def batch_to_device(batch: Batch, device: torch.device) -> Batch:
    """Copy a batch to `device` without blocking the host (the source should be pinned)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


# ---------------------------------------------------------------- the trainer


@dataclass
class TrainResult:
    """What `Trainer.fit` returns: the last step, the logged rows and the final checkpoint."""

    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None


class Trainer:
    """Trains `model` on `data` as `config` says; `out_dir` receives checkpoints and logs.

    `data` is an iterable of batches for this process; when it has `state_dict()` and
    `load_state_dict()` its position is checkpointed, otherwise a resumed run skips the batches
    already consumed. `identity` (any JSON-able dict: the model config, the vocabulary) is stored in
    each checkpoint; resuming against a different identity is refused. `recipe` (JSON-able: what
    decides the trained weights, such as the learning rate and the data) is stored too. `resume`:
    - "auto": continue a checkpoint when there is one; one trained with another recipe is refused;
    - "require": a checkpoint must exist; it is continued under the new recipe if that changed;
    - "if-same": continue a checkpoint of the same identity and recipe, otherwise start over;
    - "never": start over.

    Starting over in a folder that holds checkpoints removes them first, so that the folder never
    mixes checkpoints of two runs.
    """

    def __init__(
        self,
        model: nn.Module,
        config: PretrainConfig,
        out_dir: str | Path | None = None,
        data: Iterable[Batch] | None = None,
        *,
        device: torch.device | str | None = None,
        seed: int = 0,
        identity: dict[str, Any] | None = None,
        recipe: dict[str, Any] | None = None,
        resume: str = "auto",
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.data = data
        self.seed = seed
        self.identity = json.loads(json.dumps(identity or {}))
        self.recipe = json.loads(json.dumps(recipe)) if recipe is not None else None
        self.callbacks = list(callbacks)
        if resume not in RESUME_MODES:
            raise VbertError(f"resume must be one of {', '.join(RESUME_MODES)}, got {resume!r}")
        self.resume = resume
        requested = torch.device(device) if device is not None else next(model.parameters()).device
        self.dist, self.device = init_distributed(requested)
        self.model = model.to(self.device)
        self.optimizer = build_optimizer(self.model, config.lr, config.weight_decay, self.device)
        schedule = partial(
            lr_factor, warmup=config.warmup_steps, total=config.steps, schedule=config.schedule
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.amp_dtype = autocast_dtype(config.precision, self.device)
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        forward: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
            forward = self.ddp
        self.forward = torch.compile(forward, mode=config.compile_mode) if config.compile else forward
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.step = 0
        self.batches_seen = 0
        self.last_checkpoint: Path | None = None
        self.history: list[dict[str, float]] = []
        self._writer: Any = None  # TensorBoard SummaryWriter on rank 0
        self._sums: dict[str, torch.Tensor] = {}
        self._window_steps = 0
        self._window_sequences = 0
        self._window_start, self._window_data_wait = time.perf_counter(), 0.0
        self._bad = torch.zeros(
            (), dtype=torch.bool, device=self.device
        )  # any non-finite loss since last check

    # ------------------------------------------------------------ one optimisation step

    def train_step(self, micro_batches: Batch | Sequence[Batch]) -> dict[str, torch.Tensor]:
        """One optimizer step over `grad_accum` micro-batches; returns detached metrics on the device."""
        if isinstance(micro_batches, dict):
            micro_batches = [micro_batches]
        self.model.train()
        n = len(micro_batches)
        keys: list[str] = []
        total: torch.Tensor | None = None  # [M] the scalar outputs, averaged over micro-batches
        for i, batch in enumerate(micro_batches):
            batch = batch_to_device(batch, self.device)
            last = i == n - 1
            no_sync = self.ddp.no_sync() if (self.ddp is not None and not last) else contextlib.nullcontext()
            amp = (
                torch.autocast(self.device.type, dtype=self.amp_dtype)
                if self.amp_dtype is not None
                else contextlib.nullcontext()
            )
            with no_sync:
                with amp:
                    out = self.forward(**batch)
                (out["loss"] / n).backward()
            keys = [k for k, v in out.items() if isinstance(v, torch.Tensor) and v.ndim == 0]
            vector = torch.stack([out[k].detach().float() for k in keys]) / n  # one kernel, no sync
            total = vector if total is None else total + vector
        if self.config.clip_grad > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.clip_grad, foreach=True)
            keys, total = [*keys, "grad_norm"], torch.cat([total, norm.float().reshape(1)])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        metrics = dict(zip(keys, total.unbind()))  # views of one vector
        self._bad |= ~torch.isfinite(metrics["loss"])
        return metrics

    # ------------------------------------------------------------ the loop

    def fit(self) -> TrainResult:
        """Train until `config.steps`, resuming from `out_dir` when a checkpoint is there."""
        if self.data is None:
            raise VbertError("Trainer.fit needs data (an iterable of batches)")
        if self.config.steps <= 0:
            raise VbertError(f"pretrain.steps must be positive, got {self.config.steps}")
        resumed = self._maybe_resume()
        if not resumed:
            if self.dist.is_main and self.out_dir is not None:
                clear_checkpoints(
                    self.out_dir
                )  # a new run: no checkpoint of an earlier one stays beside its own
            if self.dist.enabled:
                torch.distributed.barrier()
            torch.manual_seed(self.seed + self.dist.rank)  # dropout differs per rank, reproducibly
        self._open_logs(resumed)
        batches = self._batch_stream()
        quiet_rank = {} if self.dist.is_main else {"disable": True}
        bar = progress(total=self.config.steps, initial=self.step, desc="pretrain", **quiet_rank)
        self._window_start, self._window_data_wait = time.perf_counter(), 0.0
        with GracefulStop("training") as stop:  # SIGTERM / Ctrl-C: checkpoint, then stop (see _stop_here)
            try:
                while self.step < self.config.steps:
                    if self._stop_agreed(stop):
                        self._stop_here(stop, save=True)
                    waited = time.perf_counter()
                    try:
                        micro = [next(batches) for _ in range(self.config.grad_accum)]
                    except Exception:
                        if (
                            stop.requested
                        ):  # the signal killed the data workers too; the model is between steps
                            self._stop_here(stop, save=not self.dist.enabled)
                        raise
                    self._window_data_wait += (
                        time.perf_counter() - waited
                    )  # host blocked on the input pipeline
                    metrics = self.train_step(micro)
                    self.step += 1
                    self._accumulate(metrics, micro)
                    bar.update(1)
                    final = self.step == self.config.steps
                    if self.step % self.config.log_every == 0 or final:
                        row = self._flush_metrics()
                        bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
                    if self.step % self.config.checkpoint_every == 0 or final:
                        self.save()
                    for callback in self.callbacks:
                        callback(self)
            finally:
                bar.close()
                if self._writer is not None:
                    self._writer.close()
        return TrainResult(self.step, self.history, self.last_checkpoint)

    def _stop_agreed(self, stop: GracefulStop) -> bool:
        """Whether to stop before the next step: at once when alone; with DDP, every rank together
        at a log step (one small all-reduce there, so no rank waits for a peer that has stopped)."""
        if not self.dist.enabled:
            return stop.requested
        if self.step % self.config.log_every:
            return False
        signum = torch.tensor(float(stop.signal or 0), device=self.device)
        torch.distributed.all_reduce(signum, op=torch.distributed.ReduceOp.MAX)
        if signum and stop.signal is None:  # a peer was signalled: stop as it does
            stop.signal = signal.Signals(int(signum))
        return bool(signum)

    def _stop_here(self, stop: GracefulStop, save: bool) -> None:
        """Write a checkpoint of the finished step (when `save` and there is an output folder); raise."""
        name = stop.signal.name if stop.signal is not None else "a stop request"
        saved_now = self.last_checkpoint is not None and self.last_checkpoint.name == checkpoint_name(
            self.step
        )
        path = (self.last_checkpoint if saved_now else self.save()) if save else None
        if path is not None:
            where = f"a checkpoint of step {self.step} is in {path}; run the same command again to resume"
        elif self.last_checkpoint is not None:
            where = f"no checkpoint written now; the last one is {self.last_checkpoint}"
        else:
            where = "nothing was saved (no checkpoint had been written yet)"
        raise TrainingStopped(
            f"stopped by {name} after step {self.step} of {self.config.steps}: {where}",
            exit_code=stop.exit_code or 130,
        )

    def _batch_stream(self):
        """Yield batches forever, re-iterating the data at its end; count what was consumed."""
        skip = 0 if hasattr(self.data, "load_state_dict") else self.batches_seen
        epoch_yielded = True
        while epoch_yielded:
            epoch_yielded = False
            for batch in self.data:
                epoch_yielded = True
                if skip > 0:
                    skip -= 1
                    continue
                self.batches_seen += 1
                yield batch
        raise DataError("the training data yielded no batches (is the dataset empty?)")

    def _accumulate(self, metrics: dict[str, torch.Tensor], micro: list[Batch]) -> None:
        for key, value in metrics.items():
            self._sums[key] = self._sums[key] + value if key in self._sums else value
        self._window_steps += 1
        self._window_sequences += sum(int(next(iter(b.values())).shape[0]) for b in micro)

    def _check_finite(self) -> None:
        bad = self._bad.float()
        if self.dist.enabled:  # every rank stops together, even when only one saw the NaN
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if bool(bad):  # the one host sync, at log and checkpoint steps only
            where = (
                f"; the last good checkpoint is {self.last_checkpoint}"
                if self.last_checkpoint
                else "; no checkpoint had been written yet"
            )
            raise TrainingDiverged(
                f"loss became NaN or infinite at or before step {self.step}: training stopped{where} "
                "(try a lower pretrain.lr, a longer warmup, or pretrain.precision=fp32)"
            )

    def _flush_metrics(self) -> dict[str, float]:
        """Average the window's metrics (one host sync), write them to JSONL and TensorBoard."""
        self._check_finite()
        keys = sorted(self._sums)
        values = torch.stack([self._sums[k] for k in keys]).tolist() if keys else []
        if self.dist.enabled:  # average across ranks so the log describes the global batch
            tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(tensor)
            values = (tensor / self.dist.world_size).tolist()
        elapsed = max(time.perf_counter() - self._window_start, 1e-9)
        row: dict[str, float] = {"step": self.step}
        row.update({k: v / self._window_steps for k, v in zip(keys, values)})
        row["lr"] = self.scheduler.get_last_lr()[0]
        row["steps_per_s"] = self._window_steps / elapsed
        row["sequences_per_s"] = self._window_sequences * self.dist.world_size / elapsed
        # Share of wall time the loop spent waiting for batches: while it waits, nothing new reaches
        # the GPU, so this bounds the time the input pipeline starved it (0 = never).
        row["data_wait_frac"] = min(1.0, self._window_data_wait / elapsed)
        self._sums, self._window_steps, self._window_sequences = {}, 0, 0
        self._window_start, self._window_data_wait = time.perf_counter(), 0.0
        self.history.append(row)
        if self.dist.is_main and self.out_dir is not None:
            with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            if self._writer is not None:
                for key, value in row.items():
                    if key != "step":
                        self._writer.add_scalar(f"pretrain/{key}", value, self.step)
        return row

    def _open_logs(self, resumed: bool) -> None:
        """Prepare metrics.jsonl (dropping rows past the resumed step) and the TensorBoard writer."""
        self._writer = None
        if not self.dist.is_main or self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        log = self.out_dir / "metrics.jsonl"
        kept = []
        if resumed and log.is_file():
            for line in log.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    if json.loads(line).get("step", 0) <= self.step:
                        kept.append(line)
        atomic_write_bytes(log, "".join(line + "\n" for line in kept).encode("utf-8"))
        self.history = [json.loads(line) for line in kept]
        if self.config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self.step + 1)

    def _say(self, message: str) -> None:
        if self.dist.is_main:
            print(f"[vbert train] {message}", flush=True)

    # ------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (the RNG states of every rank included)."""
        rngs: list[Any] = [rng_state()]
        if self.dist.enabled:
            rngs = [None] * self.dist.world_size
            torch.distributed.all_gather_object(rngs, rng_state())
        data_state = self.data.state_dict() if hasattr(self.data, "state_dict") else {}
        return {
            "step": self.step,
            "batches_seen": self.batches_seen,
            "identity": self.identity,
            "recipe": self.recipe,
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "data": data_state,
            "rng": rngs,
            "world_size": self.dist.world_size,
        }

    def save(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0 writes; every rank waits for it)."""
        self._check_finite()
        if self.out_dir is None:
            return None
        state = self.state_dict()
        if self.dist.is_main:
            self.last_checkpoint = save_checkpoint(
                self.out_dir, self.step, state, keep=self.config.keep_checkpoints
            )
        if self.dist.enabled:
            torch.distributed.barrier()
        return self.last_checkpoint

    def _maybe_resume(self) -> bool:
        """Load the latest checkpoint of `out_dir` as `resume` says; True when one was loaded."""
        path = latest_checkpoint(self.out_dir) if self.out_dir is not None else None
        if path is None:
            if self.resume == "require":
                raise VbertError(
                    f"{self.out_dir}: nothing to resume, no checkpoint in {self.out_dir}/checkpoints"
                )
            return False
        if self.resume == "never":
            return False
        state = load_checkpoint(path)
        lacking = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
        if lacking:
            raise DataError(f"{path}: not a complete vbert training checkpoint (no {', '.join(lacking)})")
        if state.get("identity") != self.identity:
            diff = ", ".join(changed_settings(state.get("identity") or {}, self.identity)) or "identity"
            if self.resume == "if-same":
                self._say(
                    f"{path}: written for another model or vocabulary (differs in: {diff}); starting over"
                )
                return False
            raise DataError(
                f"{path}: checkpoint was written for another configuration (differs in: "
                f"{diff}); use a fresh --out folder"
            )
        if self.recipe is not None and state.get("recipe") != self.recipe:
            diff = (
                (", ".join(changed_settings(state["recipe"], self.recipe)) or "recipe")
                if state.get("recipe")
                else "unknown: the checkpoint does not record its settings"
            )
            if self.resume == "if-same":
                self._say(f"{path}: trained with other settings (differs in: {diff}); starting over")
                return False
            if self.resume == "auto":
                raise DataError(
                    f"{path}: checkpoint of step {state.get('step')} was trained with other settings "
                    f"(differs in: {diff}); --resume continues it under the new ones, --fresh starts "
                    "over, or use another --out folder"
                )
            self._say(f"{path}: continuing under changed settings (differs in: {diff})")
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if hasattr(self.data, "load_state_dict"):
            self.data.load_state_dict(state["data"])
        rngs = state["rng"]
        set_rng_state(rngs[self.dist.rank] if len(rngs) == self.dist.world_size else rngs[0])
        self.step, self.batches_seen = int(state["step"]), int(state["batches_seen"])
        self.last_checkpoint = path
        return True
