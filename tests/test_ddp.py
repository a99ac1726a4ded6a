"""DDP on CPU: 2 gloo processes launched by torchrun train the same as one process on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch

# Each process takes its slice of every global batch of 8; the loss is a mean over examples, so
# DDP's gradient average over 2 ranks of 4 equals one process's gradient over all 8.
WORKER = textwrap.dedent(
    """
    import os, sys
    import torch
    from torch import nn
    from vbert.config import PretrainConfig
    from vbert.pretraining.trainer import Trainer

    class Regression(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(int(os.environ.get("RANK", "0")))  # ranks start different: DDP must sync them
            self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

        def forward(self, x, y):
            return {"loss": ((self.net(x).squeeze(-1) - y) ** 2).mean()}

    class Slices:
        def __init__(self, rank, world):
            self.rank, self.world = rank, world

        def __iter__(self):
            for step in range(1000):
                g = torch.Generator().manual_seed(step)
                x = torch.randn(8, 4, generator=g)
                y = x.sum(-1)
                per = 8 // self.world
                sl = slice(self.rank * per, (self.rank + 1) * per)
                yield {"x": x[sl], "y": y[sl]}

    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    config = PretrainConfig(steps=6, lr=0.05, warmup_steps=1, log_every=3, checkpoint_every=6,
                            tensorboard=False, precision="fp32")
    torch.manual_seed(0)
    model = Regression()
    if world == 1:  # the single-process reference starts from rank 0's weights, as DDP does
        torch.manual_seed(0)
        model = Regression()
    if world == 1:
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, f"{out}/params-init.pt")
    callbacks = []
    if len(sys.argv) > 2:  # "stop": only rank 1 gets SIGTERM, once step 2 is done
        import signal
        from vbert.pretraining.trainer import TrainingStopped
        callbacks = [lambda t: os.kill(os.getpid(), signal.SIGTERM) if rank == 1 and t.step == 2 else None]
    trainer = Trainer(model, config, out, Slices(rank, world), device="cpu", callbacks=callbacks)
    if callbacks:
        try:
            trainer.fit()
        except TrainingStopped as err:
            open(f"{out}/stopped-r{rank}.txt", "w").write(f"{trainer.step} {err.exit_code}")
        torch.distributed.destroy_process_group()
        sys.exit(0)
    trainer.fit()
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, f"{out}/params-w{world}-r{rank}.pt")
    if world > 1:
        torch.distributed.destroy_process_group()
    """
)


def test_two_gloo_ranks_match_each_other_and_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VBERT_QUIET": "1"}
    env.pop("WORLD_SIZE", None)
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(tmp_path / "ddp"),
    ]
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    single = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "single")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]

    load = lambda name: torch.load(tmp_path / name, weights_only=True)  # noqa: E731
    rank0, rank1 = load("ddp/params-w2-r0.pt"), load("ddp/params-w2-r1.pt")
    alone, start = load("single/params-w1-r0.pt"), load("single/params-init.pt")
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0)  # DDP keeps ranks identical
        torch.testing.assert_close(
            rank0[key], alone[key], rtol=1e-5, atol=1e-6
        )  # = one process, global batch
    assert all(not torch.equal(start[k], rank0[k]) for k in rank0)  # training moved every tensor
    assert (tmp_path / "ddp" / "checkpoints" / "latest.json").is_file()  # rank 0 wrote the checkpoint


def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step_with_a_checkpoint(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VBERT_QUIET": "1"}
    env.pop("WORLD_SIZE", None)
    out = tmp_path / "ddp"
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(out),
        "stop",
    ]
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # rank 1 was signalled after step 2; the ranks agree at the next log step (3) and stop there together
    assert [(out / f"stopped-r{r}.txt").read_text() for r in (0, 1)] == ["3 143", "3 143"]
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*.pt")) == ["step-0000003.pt"]
