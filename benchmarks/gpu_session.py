"""Every GPU measurement of docs/benchmarks.md in one call, its results in one folder.

    PYTHONPATH=. python benchmarks/gpu_session.py --out results/gpu               # one GPU, a 570 s deadline
    PYTHONPATH=. python benchmarks/gpu_session.py --plan cpu-check --out runs/gpu-check  # the same parts, CPU

The parts, in order; each is one `vbert` command in a process of its own, with its log kept:

1. ``environment``: the card, driver, versions and CPU cores, and which of vbert's packages are
   missing (the session stops there if any is, before any GPU time is spent).
2. ``bench-base``: `vbert bench pretrain` at the VideoBERT-base shape, the compiled plain
   transformers loop and vbert's fastest variant so far in the same run (targets: 2.0x and 40% useful MFU).
3. ``bench-paper``: the paper-size encoder, 24 x 1024 (target: 45% useful MFU).
4. ``agreement``: both loops from the same weights on the same batches, in bf16 and fp32 (the same
   mathematics: fp32 curves agree; bf16 within each side's own bf16 noise).
5. ``pipeline``: `vbert run` (the `base` preset on 5,000 SynthCook videos, with the course's
   two-phase recipe): each stage's time, pretraining throughput and data wait, Table 1, Table 3
   and retrieval. SynthCook is rendered on the CPU cores the benchmarks leave free, while they run.
6. ``zero-shot-steps``: Table 1's VideoBERT rows at each kept checkpoint.

A deadline (``--deadline-s``) bounds the whole call: each part gets the time left (a benchmark
part no more than its plan's cap); a part with no time left is recorded as not started, and the
summary is written after every part. Running the script again with the same ``--work`` folder
resumes: finished parts are kept, and the pipeline resumes from its unfinished stage.

Results, in ``--out``: ``summary.md`` (each number with the card's name, each target met or not),
``summary.json`` (every number), ``report.md`` (the pipeline's own report) and ``details.tar.gz``
(each part's log and raw JSON, the evaluation tables, the stage record and the figures).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from vbert.core.manifest import atomic_write_json, package_versions, read_json
from vbert.core.run_folder import read_state
from vbert.pretraining.trainer import read_metrics

REPO = Path(__file__).resolve().parents[1]
PARTS = ("environment", "bench-base", "bench-paper", "agreement", "pipeline", "zero-shot-steps")
EVAL_TASKS = ("zero-shot", "captioning", "retrieval")
SUMMARY_RESERVE_S = 15  # kept back from the last part for the summary and the archive
KILL_GRACE_S = 20  # after SIGTERM (training writes a checkpoint), before SIGKILL


@dataclass(frozen=True)
class Target:
    """One goal of the GPU work: a number of a benchmark row against a floor."""

    what: str
    part: str  # the benchmark part whose rows it reads
    measure: str  # "ratio" (vs the part's reference row) or "mfu"
    floor: float


@dataclass(frozen=True)
class Plan:
    """What one session measures, on which device, within how long."""

    name: str
    device: str
    bench: dict[str, list[str]]  # part -> arguments of `vbert bench pretrain`
    reference: str  # the benchmark row the ratios divide by (same run)
    preset: str
    pipeline: list[str]  # `--set` overrides of the pipeline and of zero-shot-steps
    deadline_s: float
    caps_s: dict[str, float] = field(default_factory=dict)  # part -> the most seconds it may take
    generate_beside: bool = False  # render SynthCook on the cores the benchmarks leave free
    bench_cores: int = 4  # cores kept for the benchmarks while SynthCook renders beside them
    threads: int | None = None  # OMP_NUM_THREADS of every part, unless the caller set it (None: torch's own)
    targets: tuple[Target, ...] = ()


GPU = Plan(
    name="gpu",
    device="cuda",
    bench={  # the reference and the fastest variant measured so far (docs/benchmarks.md)
        "bench-base": (
            "--size base --variants plain-compiled,vbert-bf16res-cudagraphs --warmup 8 --steps 25"
        ).split(),
        "bench-paper": "--size paper --variants vbert-bf16res-cudagraphs --warmup 6 --steps 20".split(),
        "agreement": (
            "--size base --variants vbert-eager --warmup 1 --steps 3 --check-agreement 60 "
            "--agreement-vbert vbert-bf16res"
        ).split(),
    },
    reference="plain-compiled",
    preset="base",
    pipeline=[
        "data.num_train_videos=5000",
        "data.num_val_videos=250",
        "vocab.depth=3",  # 1,728 words for about 75,000 clips (depth 4's 20,736 would hold 3-4 each)
        "features.num_workers=15",
        "pretrain.steps=3000",
        "pretrain.warmup_steps=300",
        "pretrain.alignment_from_step=1125",  # the preset's 7,500 of 20,000, at the same share
        "pretrain.checkpoint_every=500",
        "pretrain.keep_checkpoints=6",  # the zero-shot curve: steps 500 to 3,000
        "eval.caption_epochs=5",
    ],
    deadline_s=570,
    caps_s={"environment": 60, "bench-base": 150, "bench-paper": 100, "agreement": 60},
    generate_beside=True,
    targets=(
        Target("base: vbert against the compiled plain loop, same run", "bench-base", "ratio", 2.0),
        Target("base: useful MFU", "bench-base", "mfu", 0.40),
        Target("paper size: useful MFU", "bench-paper", "mfu", 0.45),
    ),
)
TINY_BENCH = "--size tiny --batch 8 --seq-len 32 --text-vocab 300 --visual-words 36 --warmup 1"
CPU_CHECK = Plan(
    name="cpu-check",
    device="cpu",
    bench={
        "bench-base": f"{TINY_BENCH} --variants plain-eager,vbert-eager --steps 3".split(),
        "bench-paper": f"{TINY_BENCH} --variants vbert-bf16res-eager --steps 3".split(),
        "agreement": f"{TINY_BENCH} --variants vbert-eager --steps 1 --check-agreement 8".split(),
    },
    reference="plain-eager",
    preset="tiny",
    pipeline=["pretrain.checkpoint_every=400", "pretrain.keep_checkpoints=6"],
    deadline_s=1800,
    caps_s={"environment": 60, "bench-base": 120, "bench-paper": 120, "agreement": 120},
    generate_beside=True,
    bench_cores=1,
    threads=1,  # as `make demo`: the tiny models gain nothing from a second thread, which spins
    targets=GPU.targets,
)
PLANS = {plan.name: plan for plan in (GPU, CPU_CHECK)}


# ---------------------------------------------------------------- running the parts


class Session:
    """The parts' state in `work/session.json`, their logs and raw results in `work/parts/`."""

    def __init__(self, plan: Plan, work: Path, deadline_s: float, overrides: list[str]) -> None:
        self.plan, self.work, self.deadline_s = plan, work, deadline_s
        self.overrides = plan.pipeline + overrides
        self.parts_dir = work / "parts"
        self.run_dir = work / "run"
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = work / "session.json"
        self.state: dict[str, Any] = (
            json.loads(self.state_path.read_text(encoding="utf-8")) if self.state_path.is_file() else {}
        )
        self.start = time.monotonic()

    def time_left(self) -> float:
        """Seconds until the deadline, less what the summary needs."""
        return self.deadline_s - (time.monotonic() - self.start) - SUMMARY_RESERVE_S

    def record(self, part: str, status: str, seconds: float, note: str = "", log_tail: str = "") -> None:
        """Keep one part's outcome in session.json (written at once: the call may be killed)."""
        self.state[part] = {
            "status": status,
            "seconds": round(seconds, 1),
            "note": note,
            "log_tail": log_tail,
        }
        atomic_write_json(self.state_path, self.state)

    def done(self, part: str) -> bool:
        """Whether an earlier call finished this part."""
        return self.state.get(part, {}).get("status") == "ok"

    def config_arguments(self) -> list[str]:
        """`--preset P --set K=V ...`: the pipeline's config, as each `vbert` command takes it."""
        return ["--preset", self.plan.preset, *[arg for s in self.overrides for arg in ("--set", s)]]

    def pipeline_command(self, *only: str) -> list[str]:
        """`vbert run` over the session's run folder (all stages, or those in `only`)."""
        command = vbert_command("run", *self.config_arguments(), "--out", str(self.run_dir))
        return command + (["--only", ",".join(only)] if only else [])

    def zero_shot_steps_command(self) -> list[str]:
        """`vbert eval zero-shot-steps` over the checkpoints the pipeline's pretraining kept."""
        model, out = self.run_dir / "pretrain", self.parts_dir / "eval-steps"
        return vbert_command(
            "eval", "zero-shot-steps", *self.config_arguments(), "--device", self.plan.device,
            "--model", str(model), "--out", str(out),
        )  # fmt: skip

    def bench_command(self, part: str) -> list[str]:
        """`vbert bench pretrain` as the plan gives it for `part`, its rows into parts/<part>.json."""
        json_path = self.parts_dir / f"{part}.json"
        return vbert_command(
            "bench",
            "pretrain",
            *self.plan.bench[part],
            "--device",
            self.plan.device,
            "--json",
            str(json_path),
        )

    def finished(self, part: str, log: Path, outcome: tuple[str, str], began: float) -> None:
        """Record how a part ended; a failure's note ends with the last line of its log (the error)."""
        status, note = outcome
        seconds = time.monotonic() - began
        tail = log_tail(log)
        if status == "failed" and tail:
            note = f"{note}: {tail.splitlines()[-1]}"
        self.record(part, status, seconds, note, tail)
        print(f"[session] {part}: {status} in {seconds:.1f} s", flush=True)


def vbert_command(*args: str) -> list[str]:
    """The argument list of one `vbert` command, in this Python."""
    return [sys.executable, "-m", "vbert", *args]


def child_env(threads: int | None) -> dict[str, str]:
    """The environment of each part: this checkout's vbert first on the path, output unbuffered."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if threads is not None:
        env.setdefault("OMP_NUM_THREADS", str(threads))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def start(
    command: list[str], log: Path, cores: set[int] | None = None, threads: int | None = None
) -> subprocess.Popen:
    """Start one part's command in a process group of its own, its output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {' '.join(command)}\n".encode())
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(threads),
            cwd=REPO,
            start_new_session=True,
        )
    if cores:
        with contextlib.suppress(OSError, AttributeError):  # not every platform pins processes
            os.sched_setaffinity(process.pid, cores)
    return process


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the part's process group (training writes a checkpoint), then SIGKILL if it stays."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def finish(process: subprocess.Popen, timeout_s: float) -> tuple[str, str]:
    """Wait for a started part: ("ok" | "failed" | "out of time", a note)."""
    try:
        code = process.wait(max(timeout_s, 0.0))
    except subprocess.TimeoutExpired:
        stop(process)
        return "out of time", f"stopped after {timeout_s:.0f} s; running the session again resumes it"
    return ("ok", "") if code == 0 else ("failed", f"exit status {code}")


def log_tail(log: Path, lines: int = 15) -> str:
    """The last lines of a part's log (what a failure said)."""
    if not log.is_file():
        return ""
    text = log.read_text(encoding="utf-8", errors="replace")
    return "\n".join(re.split(r"[\r\n]+", text.strip())[-lines:])  # progress bars end lines with \r


def run_part(session: Session, part: str, command: list[str], cores: set[int] | None = None) -> None:
    """Run one part within its cap and the time left; record how it went."""
    log = session.parts_dir / f"{part}.log"
    if session.done(part):
        print(f"[session] {part}: finished by an earlier call", flush=True)
        return
    budget = min(session.time_left(), session.plan.caps_s.get(part, float("inf")))
    if budget <= 0:
        session.record(part, "not started", 0.0, "no time left before the deadline")
        print(f"[session] {part}: not started, no time left", flush=True)
        return
    print(f"[session] {part}: up to {budget:.0f} s, log in {log}", flush=True)
    began = time.monotonic()
    session.finished(part, log, finish(start(command, log, cores, session.plan.threads), budget), began)


def split_cores(plan: Plan) -> tuple[set[int], set[int]] | None:
    """(the benchmarks' cores, SynthCook's cores) when rendering can run beside them, else None."""
    with contextlib.suppress(AttributeError):
        cores = sorted(os.sched_getaffinity(0))
        if plan.generate_beside and len(cores) > plan.bench_cores:
            return set(cores[: plan.bench_cores]), set(cores[plan.bench_cores :])
    return None


# ---------------------------------------------------------------- the environment part


def missing_packages() -> list[str]:
    """vbert's required distributions (pyproject.toml) that this Python lacks."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M)
    names = re.findall(r'"([A-Za-z0-9_.-]+)', block.group(1)) if block else []
    missing = []
    for name in names:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def environment() -> dict[str, Any]:
    """The machine and software this session measures on."""
    env: dict[str, Any] = {
        **package_versions(),
        "cuda": torch.version.cuda,
        "cpu_cores": os.cpu_count(),
        "java (METEOR)": shutil.which("java") is not None,
        "missing_packages": missing_packages(),
        "card": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU",
    }
    for name in ("triton", "pycocoevalcap"):  # the compiler of torch.compile, Table 3's scorer
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            env[name] = importlib.metadata.version(name)
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            env["nvidia-smi"] = subprocess.run(
                query, capture_output=True, text=True, timeout=30
            ).stdout.strip()
    return env


# ---------------------------------------------------------------- the summary


def _read_json(path: Path) -> Any:
    """A part's JSON result, or None where the part wrote none."""
    return read_json(path) if path.is_file() else None


def bench_results(session: Session) -> dict[str, Any]:
    """Each benchmark part's rows, with the ratio to the plan's reference row of the same run.

    A part stopped at its cap wrote no JSON; the rows it finished are read from its log, where
    `vbert bench` prints each row as a JSON line as soon as it is measured.
    """
    out = {}
    for part in ("bench-base", "bench-paper"):
        data = _read_json(session.parts_dir / f"{part}.json") or rows_from_log(session, part)
        if data is None:
            continue
        reference = next((r for r in data["rows"] if r["name"] == session.plan.reference), None)
        for row in data["rows"]:
            row["ratio"] = round(row["seq_per_s"] / reference["seq_per_s"], 3) if reference else None
        out[part] = {"device": data["device"], "setup": data["setup"], "rows": data["rows"]}
    return out


def rows_from_log(session: Session, part: str) -> dict[str, Any] | None:
    """The rows a benchmark part printed before it was stopped (None when it printed none)."""
    log = session.parts_dir / f"{part}.log"
    if not log.is_file():
        return None
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    rows = [json.loads(line) for line in lines if line.startswith('{"name": ')]
    card = (_read_json(session.parts_dir / "environment.json") or {}).get("card", "not read")
    device = "cpu" if session.plan.device == "cpu" else card
    return {"device": device, "setup": None, "rows": rows} if rows else None


def target_results(plan: Plan, bench: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target against the best vbert row of its part; `met` is None where nothing was measured.

    The targets are GPU figures against the compiled plain loop: rows measured on a CPU do not count.
    """
    out = []
    for target in plan.targets:
        result = bench.get(target.part, {})
        on_gpu = result.get("device", "cpu") != "cpu"
        rows = [r for r in result.get("rows", []) if r["name"].startswith("vbert") and on_gpu]
        values = [(r[target.measure], r["name"]) for r in rows if r.get(target.measure) is not None]
        best = max(values, default=(None, None))
        out.append(
            {
                "target": target.what,
                "measure": target.measure,
                "floor": target.floor,
                "measured": best[0],
                "variant": best[1],
                "device": bench.get(target.part, {}).get("device"),
                "met": None if best[0] is None else best[0] >= target.floor,
            }
        )
    return out


def pipeline_results(session: Session) -> dict[str, Any]:
    """Each stage's time and summary, pretraining throughput, and the evaluation tables."""
    run_dir = session.run_dir
    if not run_dir.is_dir():
        return {}
    state = read_state(run_dir)
    out: dict[str, Any] = {
        "stages": {
            name: {"seconds": s.get("seconds"), "summary": s.get("summary")} for name, s in state.items()
        }
    }
    logged = read_metrics(run_dir / "pretrain")[1:]  # the first window holds compilation
    if logged and all("data_wait_frac" in r for r in logged):
        out["pretraining"] = {
            "median steps/s": round(statistics.median(r["steps_per_s"] for r in logged), 2),
            "median sequences/s": round(statistics.median(r["sequences_per_s"] for r in logged), 1),
            "median share of time waiting for data": round(
                statistics.median(r["data_wait_frac"] for r in logged), 4
            ),
        }
    out["tables"] = {}
    for task in EVAL_TASKS:
        md = run_dir / "eval" / f"{task}.md"
        if md.is_file():
            out["tables"][task] = md.read_text(encoding="utf-8").split("\n", 2)[-1].strip()
    return out


def _percent(value: float | None) -> str:
    return "not measured" if value is None else f"{100 * value:.1f}%"


def summary_markdown(session: Session, summary: dict[str, Any]) -> str:
    """summary.md: the parts, the benchmark rows, the targets, the pipeline and its tables."""
    env = summary["environment"] or {}
    card = env.get("card", "not read")
    lines = [
        f"# Measurements of one session, plan `{session.plan.name}`: {card}",
        "",
        f"Written {summary['written']}; deadline {session.deadline_s:.0f} s; "
        f"this call {summary['wall_s']:.0f} s.",
        f"torch {env.get('torch', '?')}, CUDA {env.get('cuda')}, Python {env.get('python', '?')}, "
        f"{env.get('cpu_cores', '?')} CPU cores.",
        "",
        "## Parts",
        "",
        "| part | status | seconds | note |",
        "|---|---|---:|---|",
    ]
    for part in ("generate-beside", *PARTS):
        if part in summary["parts"]:
            p = summary["parts"][part]
            note = p["note"].replace("|", "/")
            lines.append(f"| {part} | {p['status']} | {p['seconds']:.1f} | {note} |")
    for part, result in summary["bench"].items():
        lines += [
            "",
            f"## {part}: pretraining step, {result['device']}",
            "",
            f"Ratios divide by `{session.plan.reference}` of the same run.",
            "",
            "| variant | seq/s | useful MFU | peak GiB | ratio |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in result["rows"]:
            ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
            lines.append(
                f"| {r['name']} | {r['seq_per_s']:,.1f} | {_percent(r['mfu'])} | "
                f"{r['peak_mem_gib'] or ''} | {ratio} |"
            )
    lines += [
        "",
        "## Targets",
        "",
        "| target | floor | measured | variant | met |",
        "|---|---:|---:|---|---|",
    ]
    for t in summary["targets"]:
        ratio = t["measure"] == "ratio"
        floor = f"{t['floor']:.1f}x" if ratio else _percent(t["floor"])
        if t["measured"] is None:
            measured = "not measured"
        else:
            measured = f"{t['measured']:.2f}x" if ratio else _percent(t["measured"])
        met = {None: "not measured", True: "yes", False: "no"}[t["met"]]
        lines.append(
            f"| {t['target']} ({t['device'] or card}) | {floor} | {measured} | {t['variant'] or ''} | {met} |"
        )
    agreement = summary["agreement"]
    if agreement:
        lines += ["", f"## Same mathematics ({agreement['steps']} steps, same weights and batches)", ""]
        lines.append(
            f"- vbert vs plain: largest gap {agreement['max_abs_diff']:.6f}, "
            f"mean {agreement['mean_abs_diff']:.6f}; "
            f"step 0 {agreement['step0_vbert']:.4f} vs {agreement['step0_plain']:.4f}, "
            f"last {agreement['final_vbert']:.4f} vs {agreement['final_plain']:.4f}"
        )
        for key, what in (
            ("fp32_gap", "vbert fp32 vs plain fp32"),
            ("bf16_noise_vbert", "vbert bf16 vs vbert fp32"),
            ("bf16_noise", "plain bf16 vs plain fp32"),
        ):
            if key in agreement:
                gap = agreement[key]
                lines.append(
                    f"- {what}: largest gap {gap['max_abs_diff']:.6f}, mean {gap['mean_abs_diff']:.6f}"
                )
    pipeline = summary["pipeline"]
    if pipeline:
        lines += ["", f"## The pipeline ({card})", "", "| stage | seconds | summary |", "|---|---:|---|"]
        for name, stage in pipeline["stages"].items():
            text = ", ".join(
                f"{k}: {v}" for k, v in (stage["summary"] or {}).items() if not isinstance(v, dict)
            )
            lines.append(f"| {name} | {stage['seconds']} | {text} |")
        if "pretraining" in pipeline:
            lines += [
                "",
                "Pretraining, after the first logged window: "
                + ", ".join(f"{k} {v}" for k, v in pipeline["pretraining"].items()),
            ]
        for task, table in pipeline["tables"].items():
            lines += ["", f"### {task}", "", table]
    if summary["zero_shot_steps"]:
        lines += ["", "## Zero-shot over kept checkpoints", "", summary["zero_shot_steps"]]
    lines += ["", "The config of the pipeline is in report.md; logs and raw results in details.tar.gz.", ""]
    return "\n".join(lines)


def write_summary(session: Session, out: Path) -> dict[str, Any]:
    """summary.json, summary.md, report.md and details.tar.gz in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    bench = bench_results(session)
    agreement = (_read_json(session.parts_dir / "agreement.json") or {}).get("agreement")
    steps_md = session.parts_dir / "eval-steps" / "zero-shot-steps.md"
    summary = {
        "plan": session.plan.name,
        "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "wall_s": round(time.monotonic() - session.start, 1),
        "environment": _read_json(session.parts_dir / "environment.json"),
        "parts": session.state,
        "bench": bench,
        "targets": target_results(session.plan, bench),
        "agreement": {k: v for k, v in agreement.items() if k != "curves"} if agreement else None,
        "pipeline": pipeline_results(session),
        "zero_shot_steps": steps_md.read_text(encoding="utf-8").split("\n", 2)[-1].strip()
        if steps_md.is_file()
        else None,
        "zero_shot_steps_rows": _read_json(session.parts_dir / "eval-steps" / "zero-shot-steps.json"),
        "pipeline_overrides": session.overrides,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(session, summary), encoding="utf-8")
    if (session.run_dir / "report.md").is_file():
        shutil.copyfile(session.run_dir / "report.md", out / "report.md")
    write_details(session, out / "details.tar.gz")
    return summary


def write_details(session: Session, path: Path) -> None:
    """The parts' logs and raw JSON, the evaluation tables, the stage record and the figures."""
    files = [session.state_path, *sorted(p for p in session.parts_dir.rglob("*") if p.is_file())]
    run = session.run_dir
    files += [run / name for name in ("pipeline.json", "config.yaml", "report.md")]
    files += sorted(run.glob("*.png")) + [run / "pretrain" / "metrics.jsonl"]
    files += sorted((run / "eval").glob("*.json")) + sorted((run / "eval").glob("*.md"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for file in files:
            if file.is_file():
                archive.add(file, arcname=file.relative_to(session.work).as_posix())
    path.write_bytes(buffer.getvalue())


# ---------------------------------------------------------------- the session


def run_session(
    plan: Plan, out: Path, work: Path, deadline_s: float, overrides: list[str], parts: list[str]
) -> int:
    """Run the parts named in `parts`, in order, within the deadline; 0 when every one finished."""
    session = Session(plan, work, deadline_s, overrides)
    if "environment" in parts and not session.done("environment"):
        began = time.monotonic()
        env = environment()
        atomic_write_json(session.parts_dir / "environment.json", env)
        print(json.dumps(env, indent=2), flush=True)
        if env["missing_packages"]:
            note = f"missing: {', '.join(env['missing_packages'])} (pip install them, then run again)"
            session.record("environment", "failed", time.monotonic() - began, note)
            write_summary(session, out)
            print(f"[session] stopped before measuring anything: {note}", file=sys.stderr)
            return 2
        session.record("environment", "ok", time.monotonic() - began)
    if plan.device == "cuda" and not torch.cuda.is_available():
        print("[session] this plan needs a CUDA GPU and there is none; --plan cpu-check runs on the CPU")
        return 2
    cores = split_cores(plan) if "pipeline" in parts else None
    beside = None
    beside_log = session.parts_dir / "generate-beside.log"
    wanted = not session.done("pipeline") and not session.done("generate-beside") and session.time_left() > 0
    if cores is not None and wanted:
        print(f"[session] rendering SynthCook beside the benchmarks on cores {sorted(cores[1])}", flush=True)
        render = start(session.pipeline_command("generate"), beside_log, cores[1], plan.threads)
        beside = (render, time.monotonic())
    bench_cores = cores[0] if beside is not None else None
    try:
        for part in ("bench-base", "bench-paper", "agreement"):
            if part in parts:
                run_part(session, part, session.bench_command(part), bench_cores)
                write_summary(session, out)
        if beside is not None:
            render, began = beside
            session.finished("generate-beside", beside_log, finish(render, session.time_left()), began)
            beside = None
        if "pipeline" in parts:
            run_part(session, "pipeline", session.pipeline_command())
            write_summary(session, out)
        if "zero-shot-steps" in parts:
            run_part(session, "zero-shot-steps", session.zero_shot_steps_command())
    finally:
        if beside is not None:  # leaving early (an error, Ctrl-C): stop the rendering too
            stop(beside[0])
        summary = write_summary(session, out)
    print((out / "summary.md").read_text(encoding="utf-8"), flush=True)
    finished = [summary["parts"].get(p, {}).get("status") == "ok" for p in parts]
    return 0 if all(finished) else 1


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the session."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plan", choices=sorted(PLANS), default="gpu", help="gpu (default) or cpu-check")
    parser.add_argument(
        "--out", required=True, help="folder for summary.md, summary.json, report.md, details"
    )
    parser.add_argument(
        "--work", default=None, help="folder for the run and the parts' state (default: runs/session-<plan>)"
    )
    parser.add_argument(
        "--deadline-s", type=float, default=None, help="the whole call's limit (default: the plan's)"
    )
    parser.add_argument(
        "--preset", default=None, help="the pipeline's preset or YAML file (default: the plan's)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a pipeline setting, after the plan's (repeatable)",
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma list of parts to run (default: all: {','.join(PARTS)})",
    )
    parser.add_argument(
        "--cap",
        action="append",
        default=[],
        metavar="PART=SECONDS",
        help="the most seconds one part may take, over the plan's (repeatable)",
    )
    parser.add_argument(
        "--no-generate-beside", action="store_true", help="render SynthCook in the pipeline part, not beside"
    )
    args = parser.parse_args(argv)
    plan = PLANS[args.plan]
    if args.preset:
        plan = replace(plan, preset=args.preset)
    if args.no_generate_beside:
        plan = replace(plan, generate_beside=False)
    caps = dict(plan.caps_s)
    for cap in args.cap:
        part, _, seconds = cap.partition("=")
        if part not in PARTS or not re.fullmatch(r"\d+(\.\d*)?", seconds):
            parser.error(f"--cap {cap}: expected PART=SECONDS with a part of {', '.join(PARTS)}")
        caps[part] = float(seconds)
    plan = replace(plan, caps_s=caps)
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    work = Path(args.work or REPO / "runs" / f"session-{plan.name}")
    deadline = args.deadline_s if args.deadline_s is not None else plan.deadline_s
    return run_session(plan, Path(args.out), work, deadline, args.overrides, parts)


if __name__ == "__main__":
    sys.exit(main())
