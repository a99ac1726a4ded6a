"""The generic trainer on a toy regression model: schedule, accumulation, logs, checkpoints, exact resume."""

from __future__ import annotations

import json
import math
import os
import signal

import pytest
import torch
from torch import nn

from vbert.config import PretrainConfig
from vbert.errors import DataError, VbertError
from vbert.pretraining.checkpoint import latest_checkpoint, load_checkpoint
from vbert.pretraining.optim import build_optimizer, lr_factor
from vbert.pretraining.trainer import Trainer, TrainingDiverged, TrainingStopped


class ToyModel(nn.Module):
    """y = MLP(x) with dropout, so resuming must restore the random state to match exactly."""

    def __init__(self, nan_at_call: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.GELU(), nn.Dropout(0.2), nn.Linear(16, 1))
        self.calls = 0
        self.nan_at_call = nan_at_call

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        loss = ((self.net(x).squeeze(-1) - y) ** 2).mean()
        if self.nan_at_call is not None and self.calls >= self.nan_at_call:
            loss = loss * float("nan")
        return {"loss": loss, "mse": loss.detach()}


def toy_batch(index: int, batch_size: int = 8) -> dict[str, torch.Tensor]:
    """Batch number `index` of a fixed regression problem, the same every time it is asked for."""
    g = torch.Generator().manual_seed(1000 + index)
    x = torch.randn(batch_size, 4, generator=g)
    return {"x": x, "y": x @ torch.tensor([1.0, -2.0, 0.5, 3.0])}


class ToyBatches:
    """Deterministic batches by position, with a checkpointable position."""

    def __init__(self, batch_size: int = 8, length: int | None = None) -> None:
        self.batch_size, self.length, self.position = batch_size, length, 0

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        return toy_batch(index, self.batch_size)

    def __iter__(self):
        while self.length is None or self.position < self.length:
            self.position += 1
            yield self.batch(self.position - 1)

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.position = state["position"]


class PlainBatches:
    """The same batches from a plain re-iterable (no state_dict): resume must skip what was seen."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __iter__(self):
        return (toy_batch(i) for i in range(self.length))


def tiny_config(**kw) -> PretrainConfig:
    base = dict(
        steps=12,
        lr=0.01,
        warmup_steps=2,
        log_every=1,
        checkpoint_every=4,
        tensorboard=False,
        precision="fp32",
    )
    base.update(kw)
    return PretrainConfig(**base)


def losses(path) -> list[float]:
    return [json.loads(line)["loss"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_lr_schedule_warms_up_then_decays_to_zero():
    assert lr_factor(0, 4, 20, "linear") == pytest.approx(0.25)
    assert lr_factor(3, 4, 20, "linear") == pytest.approx(1.0)
    assert lr_factor(12, 4, 20, "linear") == pytest.approx(0.5)
    assert lr_factor(12, 4, 20, "cosine") == pytest.approx(0.5)
    assert lr_factor(8, 4, 20, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(20, 4, 20, "linear") == pytest.approx(0.0)


class Clock:
    """A stand-in for `time.perf_counter` in the trainer: time moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


class TimedModel(ToyModel):
    """A toy model whose every forward takes 5 ms of the test's clock."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        self.clock.now += 0.005
        return super().forward(x, y)


class SlowBatches(ToyBatches):
    """Batches that take 20 ms each of the test's clock: an input pipeline slower than the model's step."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def __iter__(self):
        for batch in super().__iter__():
            self.clock.now += 0.02
            yield batch


def test_data_wait_share_is_logged_and_exposes_a_slow_input_pipeline(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr("vbert.pretraining.trainer.time", clock)  # the trainer's clock only
    config = tiny_config(steps=10, log_every=5, checkpoint_every=100)
    fast = Trainer(TimedModel(clock), config, tmp_path / "f", ToyBatches()).fit().history
    slow = Trainer(TimedModel(clock), config, tmp_path / "s", SlowBatches(clock)).fit().history
    # per step: 20 ms waiting for the batch, then 5 ms of model; the waits are all of the data's time
    assert [row["data_wait_frac"] for row in fast] == [0.0, 0.0]
    assert [row["data_wait_frac"] for row in slow] == pytest.approx([0.8, 0.8])
    assert [row["steps_per_s"] for row in slow] == pytest.approx([40.0, 40.0])  # 1 / 25 ms


def test_weight_decay_only_on_matrices():
    groups = build_optimizer(ToyModel(), 1e-3, 0.1, torch.device("cpu")).param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert all(p.ndim >= 2 for p in groups[0]["params"]) and all(p.ndim == 1 for p in groups[1]["params"])


def test_fit_lowers_the_loss_and_writes_logs_and_checkpoints(tmp_path):
    trainer = Trainer(
        ToyModel(), tiny_config(steps=40, lr=0.05, tensorboard=True, log_every=5), tmp_path, ToyBatches()
    )
    result = trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(5, 41, 5))
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    assert {"mse", "grad_norm", "lr", "sequences_per_s", "data_wait_frac"} <= set(rows[0])
    assert all(0.0 <= r["data_wait_frac"] <= 1.0 for r in rows)
    assert any((tmp_path / "tensorboard").iterdir())
    assert result.checkpoint == latest_checkpoint(tmp_path)
    state = load_checkpoint(result.checkpoint)
    assert state["step"] == 40 and state["data"] == {"position": 40}
    assert len(list((tmp_path / "checkpoints").glob("step-*.pt"))) == 2  # older ones pruned


def test_gradient_accumulation_equals_one_big_batch():
    big, small = ToyModel(), ToyModel()
    big.net[2].p = small.net[2].p = 0.0
    t_big = Trainer(big, tiny_config(), None)
    t_small = Trainer(small, tiny_config(grad_accum=2), None)
    data = ToyBatches(batch_size=8).batch(0)
    halves = [{k: v[:4] for k, v in data.items()}, {k: v[4:] for k, v in data.items()}]
    for _ in range(3):
        m_big = t_big.train_step(data)
        m_small = t_small.train_step(halves)
    assert float(m_big["loss"]) == pytest.approx(float(m_small["loss"]), rel=1e-5)
    for a, b in zip(big.parameters(), small.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


class Crash(RuntimeError):
    pass


def crash_at(step: int):
    def callback(trainer: Trainer) -> None:
        if trainer.step == step:
            raise Crash(f"injected crash at step {step}")

    return callback


@pytest.mark.parametrize("data_cls", [ToyBatches, PlainBatches])
def test_resume_after_crash_matches_the_uninterrupted_run_step_for_step(tmp_path, data_cls):
    Trainer(ToyModel(), tiny_config(), tmp_path / "full", data_cls(length=50)).fit()
    with pytest.raises(Crash):
        Trainer(
            ToyModel(), tiny_config(), tmp_path / "cut", data_cls(length=50), callbacks=[crash_at(7)]
        ).fit()
    assert load_checkpoint(latest_checkpoint(tmp_path / "cut"))["step"] == 4
    resumed = Trainer(ToyModel(), tiny_config(), tmp_path / "cut", data_cls(length=50), resume="require")
    result = resumed.fit()
    assert result.step == 12
    full, cut = losses(tmp_path / "full" / "metrics.jsonl"), losses(tmp_path / "cut" / "metrics.jsonl")
    assert len(cut) == 12  # the rows of steps 5-7 logged before the crash were replaced, not duplicated
    assert cut == full  # exactly, step for step (same CPU kernels, same random states)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(ToyModel(nan_at_call=6), tiny_config(checkpoint_every=2), tmp_path, ToyBatches())
    with pytest.raises(TrainingDiverged, match="NaN or infinite.*step-0000004.pt"):
        trainer.fit()
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    trainer = Trainer(ToyModel(), tiny_config(steps=4, checkpoint_every=2), tmp_path, ToyBatches())
    calls = {"n": 0}
    real_replace = __import__("os").replace

    def failing_replace(src, dst):
        calls["n"] += 1
        if str(dst).endswith("step-0000004.pt"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr("vbert.core.manifest.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        trainer.fit()
    assert load_checkpoint(latest_checkpoint(tmp_path))["step"] == 2
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))  # the torn temporary file was removed


def test_bad_resumes_and_empty_data_are_refused_before_training(tmp_path):
    with pytest.raises(VbertError, match="nothing to resume"):
        Trainer(ToyModel(), tiny_config(), tmp_path / "none", ToyBatches(), resume="require").fit()
    Trainer(ToyModel(), tiny_config(steps=2), tmp_path / "run", ToyBatches(), identity={"hidden": 16}).fit()
    model = ToyModel()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(DataError, match="another configuration.*hidden"):
        Trainer(model, tiny_config(steps=4), tmp_path / "run", ToyBatches(), identity={"hidden": 32}).fit()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(DataError, match="no batches"):
        Trainer(ToyModel(), tiny_config(), tmp_path / "empty", ToyBatches(length=0)).fit()


def test_a_checkpoint_of_another_recipe_is_refused_continued_on_request_or_replaced(tmp_path, capsys):
    recipe = {"pretrain": {"lr": 0.01}, "tokens": "abc"}
    Trainer(ToyModel(), tiny_config(steps=8), tmp_path, ToyBatches(), recipe=recipe).fit()
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*.pt")) == [
        "step-0000004.pt",
        "step-0000008.pt",
    ]
    other = {"pretrain": {"lr": 0.02}, "tokens": "abc"}
    with pytest.raises(
        DataError, match=r"step-0000008\.pt: checkpoint of step 8 .*differs in: pretrain\.lr.*--fresh"
    ):
        Trainer(ToyModel(), tiny_config(steps=10, lr=0.02), tmp_path, ToyBatches(), recipe=other).fit()
    # the same recipe continues silently; settings that only run it (logging, checkpoints) are not in it
    same = Trainer(
        ToyModel(), tiny_config(steps=10, log_every=5), tmp_path, ToyBatches(), recipe=recipe
    ).fit()
    assert same.step == 10 and "differs" not in capsys.readouterr().out
    # --resume ("require") continues under the new recipe and says what changed
    continued = Trainer(
        ToyModel(), tiny_config(steps=12, lr=0.02), tmp_path, ToyBatches(), recipe=other, resume="require"
    )
    assert continued.fit().step == 12 and continued.history[0]["step"] == 1  # earlier rows kept
    assert "continuing under changed settings (differs in: pretrain.lr)" in capsys.readouterr().out
    # "if-same" (a pipeline stage whose settings changed): another recipe starts over, and the old
    # checkpoints go, so the folder never mixes two runs
    fresh = Trainer(
        ToyModel(),
        tiny_config(steps=2, checkpoint_every=2),
        tmp_path,
        ToyBatches(),
        recipe={"pretrain": {"lr": 0.03}, "tokens": "abc"},
        resume="if-same",
    )
    assert fresh.fit().step == 2
    assert "starting over" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "checkpoints").glob("step-*.pt")] == ["step-0000002.pt"]
    assert len(losses(tmp_path / "metrics.jsonl")) == 2


def test_a_checkpoint_that_records_no_recipe_is_continued_only_on_request(tmp_path):
    Trainer(ToyModel(), tiny_config(steps=4), tmp_path, ToyBatches()).fit()  # no recipe recorded
    recipe = {"pretrain": {"lr": 0.01}}
    with pytest.raises(DataError, match="differs in: unknown: the checkpoint does not record its settings"):
        Trainer(ToyModel(), tiny_config(steps=6), tmp_path, ToyBatches(), recipe=recipe).fit()
    assert (
        Trainer(ToyModel(), tiny_config(steps=6), tmp_path, ToyBatches(), recipe=recipe, resume="require")
        .fit()
        .step
        == 6
    )


def test_starting_over_removes_the_checkpoints_of_the_earlier_run(tmp_path):
    Trainer(ToyModel(), tiny_config(steps=8), tmp_path, ToyBatches()).fit()
    with pytest.raises(Crash):  # killed before its first checkpoint
        Trainer(
            ToyModel(), tiny_config(steps=8), tmp_path, ToyBatches(), resume="never", callbacks=[crash_at(1)]
        ).fit()
    assert latest_checkpoint(tmp_path) is None  # nothing of the earlier run is left to resume by mistake
    assert not list((tmp_path / "checkpoints").glob("step-*.pt"))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    Trainer(ToyModel(), tiny_config(steps=2, checkpoint_every=2), tmp_path, ToyBatches()).fit()
    path = latest_checkpoint(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="corrupt, truncated or not a vbert checkpoint") as caught:
        Trainer(ToyModel(), tiny_config(steps=4), tmp_path, ToyBatches()).fit()
    assert "weights_only" not in str(caught.value)  # never advise loading it with code execution
    state = {"step": 2, "model": {}}  # a checkpoint written by something else, or cut down by hand
    torch.save(state, path)
    with pytest.raises(
        DataError,
        match=r"step-0000002\.pt: not a complete vbert training checkpoint \(no "
        r"batches_seen, optimizer, scheduler, data, rng\)",
    ):
        Trainer(ToyModel(), tiny_config(steps=4), tmp_path, ToyBatches()).fit()


def signal_at(step: int, signum: int = signal.SIGTERM, times: int = 1):
    """A callback that sends this process `signum` (`times` times) once `step` is done.

    `raise_signal` runs the handler before it returns: each signal is one handler call, at a known point.
    """

    def callback(trainer: Trainer) -> None:
        if trainer.step == step:
            for _ in range(times):
                signal.raise_signal(signum)

    return callback


@pytest.fixture
def default_ctrl_c():
    """SIGINT handled as in a terminal during the test (KeyboardInterrupt), whatever an earlier test or
    plugin of this process left: an ignored SIGINT stays ignored by the trainer, and a late one goes
    back to the handler there was before."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_checkpoints_the_finished_step_and_the_run_resumes_exactly(
    tmp_path, signum, default_ctrl_c
):
    before = signal.getsignal(signum)
    Trainer(ToyModel(), tiny_config(), tmp_path / "full", ToyBatches()).fit()
    cut = Trainer(ToyModel(), tiny_config(), tmp_path / "cut", ToyBatches(), callbacks=[signal_at(6, signum)])
    with pytest.raises(
        TrainingStopped,
        match=f"stopped by {signal.Signals(signum).name} after step 6 of 12: "
        "a checkpoint of step 6 is in .*step-0000006.pt",
    ) as stopped:
        cut.fit()
    assert stopped.value.exit_code == 128 + signum
    assert signal.getsignal(signum) is before  # the handlers are given back
    assert load_checkpoint(latest_checkpoint(tmp_path / "cut"))["step"] == 6  # not 4: no step is lost
    assert (
        Trainer(ToyModel(), tiny_config(), tmp_path / "cut", ToyBatches(), resume="require").fit().step == 12
    )
    assert losses(tmp_path / "cut" / "metrics.jsonl") == losses(tmp_path / "full" / "metrics.jsonl")


def test_a_stop_signal_on_a_checkpoint_step_does_not_write_it_twice(tmp_path, monkeypatch):
    trainer = Trainer(ToyModel(), tiny_config(), tmp_path, ToyBatches(), callbacks=[signal_at(8)])
    saves: list[int] = []
    real_save = Trainer.save
    monkeypatch.setattr(Trainer, "save", lambda self: saves.append(self.step) or real_save(self))
    with pytest.raises(TrainingStopped, match="after step 8 of 12: a checkpoint of step 8"):
        trainer.fit()
    assert saves == [4, 8]


def test_a_second_ctrl_c_interrupts_at_once_and_a_late_signal_still_takes_effect(tmp_path, default_ctrl_c):
    trainer = Trainer(
        ToyModel(),
        tiny_config(),
        tmp_path / "a",
        ToyBatches(),
        callbacks=[signal_at(5, signal.SIGINT, times=2)],
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert (
        load_checkpoint(latest_checkpoint(tmp_path / "a"))["step"] == 4
    )  # no checkpoint at 5: stopped at once
    # A signal during the last step: training finishes and saves, then the signal is delivered again
    # to the handler there was before training (here the default one, which raises KeyboardInterrupt).
    last = Trainer(
        ToyModel(), tiny_config(), tmp_path / "b", ToyBatches(), callbacks=[signal_at(12, signal.SIGINT)]
    )
    with pytest.raises(KeyboardInterrupt):
        last.fit()
    assert load_checkpoint(latest_checkpoint(tmp_path / "b"))["step"] == 12


def test_an_ignored_ctrl_c_stays_ignored(tmp_path):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for a job a script starts with `&`
    try:
        result = Trainer(
            ToyModel(), tiny_config(), tmp_path, ToyBatches(), callbacks=[signal_at(3, signal.SIGINT)]
        ).fit()
        assert result.step == 12 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_stop_signal_without_an_output_folder_says_nothing_was_saved():
    trainer = Trainer(ToyModel(), tiny_config(), None, ToyBatches(), callbacks=[signal_at(3)])
    with pytest.raises(TrainingStopped, match="after step 3 of 12: nothing was saved"):
        trainer.fit()


class SessionIds(torch.utils.data.Dataset):
    """Each item: the session id of the process that loads it."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        return os.getsid(0)


def test_data_workers_leave_the_process_group_so_a_group_signal_reaches_only_the_trainer():
    from vbert.core.graceful_stop import detach_worker_from_signals

    loader = torch.utils.data.DataLoader(
        SessionIds(), batch_size=None, num_workers=1, worker_init_fn=detach_worker_from_signals
    )
    assert all(int(sid) != os.getsid(0) for sid in loader)
    plain = torch.utils.data.DataLoader(SessionIds(), batch_size=None, num_workers=1)
    assert all(int(sid) == os.getsid(0) for sid in plain)  # without it, workers share the session
