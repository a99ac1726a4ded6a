"""The "evaluate" stage of `vbert run`: zero-shot, captioning and retrieval tables under run_dir/eval.

Each task runs through `vbert.tasks.cli.RUNNERS`, and its table is recorded in `eval/manifest.json`
as soon as it is written, so an interrupted stage resumes at its first unfinished task and a failed
task is retried alone. Zero-shot runs last: the text-only BERT it compares with is trained in a
child process, from before pretraining when `vbert run` starts it (`text_only_ahead`), else while
captioning and retrieval run (`TextOnlyBeside`), so on two cores it adds little time. The
captioning task also keeps the captioner of Table 3's "VideoBERT + clip features" row in
`eval/captioner/` (`vbert.tasks.captioner_file`), recorded in the manifest with its files' SHA-256
(and "captioner": the folder), for `vbert describe`; a stage finished by an older vbert (no
"captioner" in its manifest) runs the captioning task again, keeping the other tables.
"""

from __future__ import annotations

import contextlib
import shutil
import traceback
from pathlib import Path
from typing import Any

from vbert.config import Config
from vbert.core.child import ChildFailed, ChildProcess
from vbert.core.device import select_device
from vbert.core.distributed import launched_world_size
from vbert.core.manifest import MANIFEST, file_sha256, is_complete, json_hash, read_json, write_manifest
from vbert.core.stages import Stage, input_identities
from vbert.data.synthcook.generate import STAGE as GENERATE
from vbert.errors import DataError, StageError, VbertError
from vbert.features.extract import STAGE as EXTRACT
from vbert.pretraining.stage import STAGE as PRETRAIN
from vbert.pretraining.stage import result_config
from vbert.pretraining.trainer import TrainingStopped
from vbert.tasks.artifacts import EVAL_DIR, TEXT_ONLY_DIR, Artifacts, text_only_trained
from vbert.tasks.captioner_file import CAPTIONER_DIR, FILES
from vbert.tasks.cli import RUNNERS, write_result
from vbert.visual_words.tokenize import STAGE as TOKENIZE
from vbert.visual_words.vocab import STAGE as VOCAB


def _zero_shot_summary(result: dict[str, Any]) -> dict[str, Any]:
    cross = result["rows"]["VideoBERT, cross-modal"]
    return {
        "zero-shot verb top-1": round(cross["verb top-1"], 1),
        "zero-shot noun top-1": round(cross["noun top-1"], 1),
    }


def _captioning_summary(result: dict[str, Any]) -> dict[str, Any]:
    best = result["rows"][-1]["scores"]
    return {"captioning BLEU-4": round(100 * best["BLEU-4"], 2), "captioning CIDEr": round(best["CIDEr"], 3)}


def _retrieval_summary(result: dict[str, Any]) -> dict[str, Any]:
    return {"retrieval R@5": round(result["rows"]["VideoBERT alignment"]["R@5"], 1)}


# The tasks of the "evaluate" stage, in the summary's order, each with the headline numbers it adds to it.
STAGE_TASKS = {
    "zero-shot": _zero_shot_summary,
    "captioning": _captioning_summary,
    "retrieval": _retrieval_summary,
}
# The order they run in: zero-shot last, since it waits for the text-only BERT trained beside the others.
RUN_ORDER = tuple(sorted(STAGE_TASKS, key=lambda task: task == "zero-shot"))


def _finished_earlier(out: Path, config_hash: str, inputs: dict[str, str]) -> dict[str, str]:
    """Output files an unfinished earlier run of the stage wrote with this config and these inputs.

    Its captioning counts only with the captioner it kept (the manifest's "captioner": the folder, or
    None when it kept none); a manifest without that field was written before captioners were kept.
    """
    path = out / MANIFEST
    if not path.is_file():
        return {}
    try:
        manifest = read_json(path)
    except VbertError:
        return {}  # unreadable: run every task again
    if manifest.get("config_hash") != config_hash or manifest.get("inputs") != inputs:
        return {}
    done = {
        name: sha
        for name, sha in manifest.get("outputs", {}).items()
        if (out / name).is_file() and file_sha256(out / name) == sha
    }
    if not _captioning_current({**manifest, "outputs": done}):
        done.pop("captioning.json", None)
    return done


def _captioning_current(manifest: dict[str, Any]) -> bool:
    """Whether a manifest's captioning kept its captioner as this vbert does (or says it kept none)."""
    if "captioner" not in manifest:
        return False  # written before captioners were kept
    return manifest["captioner"] is None or bool(_captioner_outputs(manifest.get("outputs", {})))


def _captioner_outputs(outputs: dict[str, str]) -> dict[str, str]:
    """The captioner's files among a manifest's outputs (all of them, or none)."""
    names = [f"{CAPTIONER_DIR}/{name}" for name in FILES]
    return {name: outputs[name] for name in names} if all(name in outputs for name in names) else {}


def _train_text_only(config: Config, inputs: dict[str, Path], folder: Path) -> None:
    """In a child process: train the text-only BERT into `folder` (resuming its checkpoints)."""
    model = inputs.get("pretrain")  # not yet trained when started beside pretraining
    Artifacts(config, tokens=inputs["tokenize"], pretrained=model, text_only_dir=folder).text_only()


class TextOnlyBeside(ChildProcess):
    """The text-only BERT of Table 1 trained in a child process while other work runs.

    That work is VideoBERT's pretraining (`text_only_ahead`) or the evaluate stage's captioning and
    retrieval; only zero-shot needs the text-only BERT, so on a second core it costs no time. The
    child runs the same training code with the parent's thread count, so it trains the same model as
    `Artifacts.text_only` would in this process; its checkpoints make a stopped run resume.
    """

    def __init__(self, config: Config, inputs: dict[str, Path], folder: Path) -> None:
        super().__init__(
            _train_text_only, config, inputs, folder, name="text-only BERT", stop_errors=(TrainingStopped,)
        )

    def wait(self) -> None:
        """Wait for the child; its error is raised as a StageError (a stop as TrainingStopped)."""
        try:
            self.result()
        except ChildFailed as err:
            if err.stopped:
                raise TrainingStopped(str(err), err.exit_code) from err
            raise StageError(f"text-only BERT (trained beside the other tasks): {err.reason}") from err


def _text_only_child(config: Config, inputs: dict[str, Path], folder: Path) -> TextOnlyBeside | None:
    """A child to train the text-only BERT into `folder`, or None when there is nothing to start.

    Nothing when it is trained already, nor under torchrun: the child would try to join the
    training's process group.
    """
    if launched_world_size() > 1 or text_only_trained(config, inputs["tokenize"], folder):
        return None
    return TextOnlyBeside(config, inputs, folder)


def text_only_ahead(config: Config, run_dir: Path) -> TextOnlyBeside | None:
    """The text-only BERT of a run folder, to train from the moment its tokens exist.

    `vbert run` starts it before the pretrain stage, so that it trains on the second core while
    VideoBERT pretrains; the evaluate stage then finds it trained, or waits for it (training holds a
    lock on the folder).
    """
    folder = run_dir / EVAL_DIR / TEXT_ONLY_DIR
    child = _text_only_child(config, {"tokenize": run_dir / TOKENIZE.out}, folder)
    if child is not None:
        print(
            f"[vbert run] training the text-only BERT of Table 1 beside the other stages, in {folder}",
            flush=True,
        )
    return child


def _alongside(
    config: Config, inputs: dict[str, Path], out: Path, done: dict[str, str]
) -> TextOnlyBeside | None:
    """A child that trains the text-only BERT beside the other tasks, when zero-shot still needs it.

    None when `text_only_ahead` or an earlier run trained it.
    """
    return None if "zero-shot.json" in done else _text_only_child(config, inputs, out / TEXT_ONLY_DIR)


def run_stage(config: Config, inputs: dict[str, Path], out: Path, force: bool) -> dict[str, Any]:
    """The "evaluate" stage: zero-shot, captioning and retrieval tables of the pretrained model, into `out`.

    Each finished task is recorded in the stage's manifest at once, so a run that stops (interrupted,
    out of time) resumes at the first unfinished task. A task that fails is recorded with its error and
    the others still run; the stage then ends with a StageError and, run again, retries only that task.
    """
    missing = [STAGE_FOLDERS[name] for name, folder in inputs.items() if not folder.is_dir()]
    if missing:  # every task would fail on it: say so once, before any runs
        where = next(iter(inputs.values())).parent
        raise DataError(
            f"{where}: no {', '.join(f'{m}/' for m in missing)} here; run the stages that make "
            f"{'it' if len(missing) == 1 else 'them'} first (`vbert run` without --only)"
        )
    inputs_id = input_identities(STAGE, inputs)  # the stage checks them itself (checks_inputs)
    spec = result_config(config)  # how often pretraining logs or saves changes no table
    if not force and is_complete(out, spec, inputs_id) and _captioning_current(read_json(out / MANIFEST)):
        return {"skipped": "complete", "folder": str(out)}
    done = {} if force else _finished_earlier(out, json_hash(spec), inputs_id)
    device = str(select_device())
    artifacts = Artifacts(
        config,
        videos=inputs["generate"],
        features=inputs["extract"],
        vocab=inputs["vocab"],
        tokens=inputs["tokenize"],
        pretrained=inputs["pretrain"],
        text_only_dir=out / TEXT_ONLY_DIR,
        captioner_dir=out / CAPTIONER_DIR,
    )
    summaries: dict[str, dict[str, Any]] = {}
    outputs: dict[str, str] = {}
    failures: list[dict[str, str]] = []
    beside = _alongside(config, inputs, out, done)
    with beside if beside is not None else contextlib.nullcontext():
        for task in RUN_ORDER:
            name = f"{task}.json"
            if name in done:
                print(f"[vbert run] evaluate: {task} finished in an earlier run; kept", flush=True)
                outputs[name] = done[name]
                outputs.update(_captioner_outputs(done) if task == "captioning" else {})
                summaries[task] = STAGE_TASKS[task](read_json(out / name))
            else:
                try:
                    if task == "zero-shot" and beside is not None:
                        beside.wait()  # its text-only BERT, trained while the other tasks ran
                    result, text = RUNNERS[task](config, device, artifacts)
                except TrainingStopped:  # asked to stop (SIGTERM, Ctrl-C): the whole stage stops
                    raise
                except Exception as err:  # noqa: BLE001 - recorded; the stage fails once the other tasks ran
                    if not isinstance(err, VbertError):  # a user-facing error says all in its message
                        traceback.print_exc()
                    reason = f"{type(err).__name__}: {err}"
                    print(
                        f"[vbert run] evaluate: {task} failed ({reason}); going on with the other tasks",
                        flush=True,
                    )
                    failures.append({"item": task, "reason": reason})
                    for stale in (out / name, out / f"{task}.md"):  # an earlier run's table is not this run's
                        stale.unlink(missing_ok=True)
                    if task == "captioning":
                        shutil.rmtree(out / CAPTIONER_DIR, ignore_errors=True)
                else:
                    write_result(out, task, result, text)
                    outputs[name] = file_sha256(out / name)
                    outputs.update(result.get("captioner", {}) if task == "captioning" else {})
                    # as stored, as a resumed run reads it
                    summaries[task] = STAGE_TASKS[task](read_json(out / name))
            kept = CAPTIONER_DIR if _captioner_outputs(outputs) else None
            # the tasks so far: an interrupted stage resumes at its first unfinished task
            write_manifest(out, "evaluate", spec, inputs_id, outputs, failures, False, captioner=kept)
    summary = {key: value for task in STAGE_TASKS for key, value in summaries.get(task, {}).items()}
    write_manifest(out, "evaluate", spec, inputs_id, outputs, failures, not failures, captioner=kept)
    if failures:
        listed = "; ".join(f"{f['item']}: {f['reason']}" for f in failures)
        raise StageError(
            f"evaluate: {len(failures)} of {len(STAGE_TASKS)} tasks failed ({listed}). The other "
            f"tables are in {out}; run the stage again to retry only the failed task(s)"
        )
    return summary


# keep this after the "pretrain" stage
STAGE = Stage(
    "evaluate",
    "downstream tasks: zero-shot, captioning, retrieval (vbert.tasks)",
    run_stage,
    folder=EVAL_DIR,
    needs=(GENERATE, EXTRACT, VOCAB, TOKENIZE, PRETRAIN),
    key=result_config,
    code=("vbert.tasks",),
    checks_inputs=True,
)
STAGE_FOLDERS = {need.name: need.out for need in STAGE.needs}
