"""The kept captioner as a stage of its own, for the stage cache (notebooks, `vbert describe` on a config).

In a `vbert run` folder the evaluate stage keeps the captioner of Table 3's "VideoBERT + clip
features" row in `eval/captioner/` while it makes the table. Without a run folder, `resolve(STAGE,
config)` trains that same captioner alone (`caption_table.keep_captioner`: same data, seed and
settings, no decoding or scoring) into the stage cache, once per config and inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vbert.config import Config
from vbert.core.device import select_device
from vbert.core.manifest import is_complete, read_manifest, write_manifest
from vbert.core.stages import Stage
from vbert.features.extract import STAGE as EXTRACT
from vbert.pretraining.stage import STAGE as PRETRAIN
from vbert.pretraining.stage import result_config
from vbert.tasks.artifacts import Artifacts
from vbert.tasks.caption_table import keep_captioner
from vbert.tasks.captioner_file import CAPTIONER_DIR
from vbert.visual_words.tokenize import STAGE as TOKENIZE


def run_stage(config: Config, inputs: dict[str, Path], out: Path, force: bool) -> dict[str, Any]:
    """Train the kept captioner on the features, tokens and model of `inputs`; write it into `out/captioner`."""
    if force or not is_complete(out, result_config(config)):
        artifacts = Artifacts(
            config, features=inputs["extract"], tokens=inputs["tokenize"], pretrained=inputs["pretrain"]
        )
        files = keep_captioner(config, out / CAPTIONER_DIR, str(select_device()), artifacts)
        write_manifest(out, "captioner", result_config(config), outputs=files, captioner=CAPTIONER_DIR)
    return {"files": len(read_manifest(out)["outputs"])}


STAGE = Stage(
    "captioner",
    "the captioner of Table 3's VideoBERT + clip features row, alone (vbert.tasks)",
    run_stage,
    needs=(EXTRACT, TOKENIZE, PRETRAIN),
    key=result_config,
    code=("vbert.tasks",),
)
