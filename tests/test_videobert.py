"""VideoBERT: losses per regime, initialisation (scratch / BERT checkpoint / centroids), freezing, end to end."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from toy_tokens import write_tokens

from vbert.bert.model import IGNORE_INDEX, BertConfig
from vbert.bert.wordpiece import SPECIAL_TOKENS
from vbert.config import load_config
from vbert.errors import DataError, VbertError
from vbert.pretraining.data import JOINT, TEXT, VIDEO, synthetic_batch
from vbert.pretraining.joint_vocab import JointVocab
from vbert.pretraining.saved import load_pretrained
from vbert.pretraining.stage import run_pretraining
from vbert.pretraining.videobert import VideoBertForPretraining, build_videobert, project_centroids

TEXT_V, VISUAL_V = 50, 36


def small_config(**overrides):
    sets = [
        "model.hidden_size=32",
        "model.num_layers=2",
        "model.num_heads=2",
        "model.intermediate_size=64",
        "model.max_position_embeddings=64",
        "model.hidden_dropout=0.0",
        "model.attention_dropout=0.0",
        "vocab.k=6",
        "vocab.depth=2",
        "pretrain.max_seq_len=32",
        "pretrain.max_text_len=12",
        # the three regimes with next-sentence-style alignment (the library's defaults, not tiny's recipe)
        "pretrain.regime_mix=[0.25,0.25,0.5]",
        "pretrain.alignment_share=1",
        "pretrain.mask_prob=0.15",
        "pretrain.visual_init=random",
        "pretrain.max_subsample=5",
    ]
    sets += [f"{k}={v}" for k, v in overrides.items()]
    return load_config("tiny", sets)


def test_losses_per_regime_match_a_direct_computation():
    torch.manual_seed(0)
    cfg = small_config()
    vocab = JointVocab(TEXT_V, VISUAL_V)
    model = build_videobert(cfg, vocab).eval()
    batch = synthetic_batch(8, 32, TEXT_V, VISUAL_V, config=cfg.pretrain)
    out = model(**batch)
    logits, aligned = model.predict(
        batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    )  # [B, L, V]
    flat = logits.reshape(-1, vocab.size)
    pos, lab = batch["mlm_positions"], batch["mlm_labels"]
    slot_regime = batch["regime"][pos // 32]
    for regime, name in ((TEXT, "text_mlm"), (VIDEO, "video_mlm"), (JOINT, "joint_mlm")):
        keep = (lab != IGNORE_INDEX) & (slot_regime == regime)
        torch.testing.assert_close(
            out[name], F.cross_entropy(flat[pos[keep]], lab[keep]), rtol=1e-4, atol=1e-5
        )
    joint = batch["regime"] == JOINT
    p = aligned[joint]
    y = batch["align_labels"][joint].float()
    torch.testing.assert_close(out["align"], F.binary_cross_entropy(p, y), rtol=1e-4, atol=1e-5)
    total = out["text_mlm"] + out["video_mlm"] + out["joint_mlm"] + cfg.pretrain.align_weight * out["align"]
    torch.testing.assert_close(out["loss"], total)


def test_loss_weights_come_from_the_config():
    cfg = small_config(**{"pretrain.text_mlm_weight": 0.0, "pretrain.align_weight": 2.0})
    torch.manual_seed(0)
    model = build_videobert(cfg, JointVocab(TEXT_V, VISUAL_V))
    out = model(**synthetic_batch(8, 32, TEXT_V, VISUAL_V, config=cfg.pretrain))
    torch.testing.assert_close(out["loss"], out["video_mlm"] + out["joint_mlm"] + 2.0 * out["align"])


def save_tiny_bert(directory, vocab_size: int = TEXT_V) -> None:
    """A random transformers BertForMaskedLM and a matching vocab.txt, as save_pretrained writes them."""
    import transformers

    hf_config = transformers.BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(1)
    transformers.BertForMaskedLM(hf_config).save_pretrained(directory)
    words = [f"w{i}" for i in range(vocab_size - 5)]
    (directory / "vocab.txt").write_text("\n".join([*SPECIAL_TOKENS, *words]) + "\n")


def test_init_from_bert_keeps_text_rows_and_appends_visual_rows_and_next(tmp_path):
    from vbert.bert.hf import load_hf_bert

    save_tiny_bert(tmp_path / "bert")
    source = load_hf_bert(tmp_path / "bert")
    vocab = JointVocab(TEXT_V, VISUAL_V)
    model = build_videobert(small_config(**{"model.init_from": str(tmp_path / "bert")}), vocab)
    table = model.bert.embeddings.word_embeddings.weight
    assert table.shape == (vocab.size, 32)
    torch.testing.assert_close(table[:TEXT_V], source.bert.embeddings.word_embeddings.weight)
    torch.testing.assert_close(model.bert.layers[1].ffn_in.weight, source.bert.layers[1].ffn_in.weight)
    assert model.mlm.mlm.bias.shape == (vocab.size,)
    # new rows at BERT's scale: drawn with std 0.02 (BERT's initializer_range; the text rows measure 0.0200,
    # the new ones 0.0201); the bars allow 4x either way and catch rows left at zero or drawn with std 1
    assert 0.005 < float(table[TEXT_V:].detach().std()) < 0.05
    with pytest.raises(DataError, match="vocabulary has 50 ids.*tokenizer has 60"):
        build_videobert(small_config(**{"model.init_from": str(tmp_path / "bert")}), JointVocab(60, VISUAL_V))


def test_centroid_initialisation_projects_to_the_hidden_size(tmp_path):
    torch.manual_seed(0)
    centroids = torch.randn(VISUAL_V, 20)
    rows = project_centroids(centroids, 32, scale=0.02)
    assert rows.shape == (VISUAL_V, 32) and abs(float(rows.std()) - 0.02) < 1e-6
    d_in = torch.cdist(centroids, centroids).flatten()
    d_out = torch.cdist(rows, rows).flatten()
    # neighbourhoods survive the projection: the correlation of the pairwise distances (zero diagonal
    # included) measures 0.86 here, 0.84-0.92 over projection seeds 0-49, and 0.48-0.66 for rows drawn
    # without the centroids
    assert torch.corrcoef(torch.stack([d_in, d_out]))[0, 1] > 0.8
    cfg = small_config(**{"pretrain.visual_init": "centroids"})
    vocab = JointVocab(TEXT_V, VISUAL_V)
    model = build_videobert(cfg, vocab, centroids)
    torch.testing.assert_close(
        model.bert.embeddings.word_embeddings.weight[TEXT_V : vocab.next_id],
        project_centroids(centroids, 32, 0.02, cfg.seed),
    )
    with pytest.raises(DataError, match="no visual-word centroids"):
        build_videobert(cfg, vocab)


def test_frozen_input_embeddings_do_not_move():
    from vbert.pretraining.trainer import Trainer

    cfg = small_config(**{"pretrain.freeze_input_embeddings": True, "pretrain.lr": 0.01})
    vocab = JointVocab(TEXT_V, VISUAL_V)
    model = build_videobert(cfg, vocab)
    before = model.bert.embeddings.word_embeddings.weight.clone()
    layer_before = model.bert.layers[0].ffn_in.weight.clone()
    trainer = Trainer(model, cfg.pretrain, None, device="cpu")
    trainer.train_step(synthetic_batch(8, 32, TEXT_V, VISUAL_V, config=cfg.pretrain))
    assert torch.equal(before, model.bert.embeddings.word_embeddings.weight)
    assert not torch.equal(layer_before, model.bert.layers[0].ffn_in.weight)


def test_vocab_size_mismatch_is_refused():
    with pytest.raises(ValueError, match="joint vocabulary size"):
        VideoBertForPretraining(
            BertConfig(vocab_size=10, hidden_size=32, num_heads=2), JointVocab(TEXT_V, VISUAL_V)
        )


def train_config(**overrides):
    sets = {
        "pretrain.steps": 40,
        "pretrain.batch_size": 16,
        "pretrain.lr": 0.002,
        "pretrain.warmup_steps": 4,
        "pretrain.log_every": 10,
        "pretrain.checkpoint_every": 20,
        "pretrain.tensorboard": False,
        "text.vocab_size": 60,
        "model.hidden_size": 64,
        "model.intermediate_size": 128,
        "model.num_heads": 2,
    }
    sets.update(overrides)
    return small_config(**sets)


def test_tiny_videobert_loss_falls_on_narrated_toy_videos_and_reloads(tmp_path):
    tokens = write_tokens(tmp_path / "tokens" / "tokens.jsonl", num_videos=24)
    result = run_pretraining(train_config(), tokens, tmp_path / "run", device="cpu")
    rows = result.history
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    # measured: the summed loss falls from 13.69 (mean of steps 1-10) to 11.57 (steps 31-40), video MLM 4.52
    # to 3.89, text MLM 4.19 to 3.45; the bar asks for a quarter of the fall
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.5
    assert rows[-1]["video_mlm"] < rows[0]["video_mlm"] and rows[-1]["text_mlm"] < rows[0]["text_mlm"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["steps"] == 40
    model, vocab, tokenizer = load_pretrained(tmp_path / "run")
    assert vocab.visual_size == 36 and vocab.text_size == len(tokenizer)
    ids = torch.tensor(
        [
            [
                vocab.cls_id,
                *tokenizer("we cut the tomato", add_special_tokens=False)["input_ids"],
                vocab.next_id,
                vocab.text_size + 0,
                vocab.sep_id,
            ]
        ]
    )
    logits, aligned = model.predict(ids, (ids >= vocab.text_size).long())
    assert logits.shape == (1, ids.shape[1], vocab.size) and 0 <= float(aligned) <= 1


class Crash(RuntimeError):
    """A failure injected into training at a chosen step."""


def crash_after(step: int):
    def callback(trainer) -> None:
        if trainer.step == step:
            raise Crash(f"injected at step {step}")

    return callback


def test_the_presets_bf16_compile_settings_train_like_fp32_and_resume_from_a_checkpoint(
    tmp_path, monkeypatch
):
    """base and paper train with bf16 autocast, torch.compile and a bf16 residual stream: here the same
    settings train a tiny VideoBERT on the CPU, are killed after a checkpoint and resume.

    The compiler is dynamo with the aot_eager backend: the graphs dynamo captures (forward and
    backward, autocast inside them) run by the eager kernels. Inductor's CPU code generation would add
    about a minute to the suite on a 2-core machine; what vbert must get right (tracing its model,
    autocast under compile, a compiled model's state in checkpoints) is the same with either backend.
    """
    real_compile = torch.compile
    modes: list[str] = []

    def compile_for_test(model, **kwargs):
        modes.append(kwargs["mode"])
        return real_compile(model, backend="aot_eager", **kwargs)

    monkeypatch.setattr(torch, "compile", compile_for_test)
    tokens = write_tokens(tmp_path / "tokens" / "tokens.jsonl", num_videos=24)
    settings = {"pretrain.steps": 12, "pretrain.log_every": 3, "pretrain.checkpoint_every": 6}
    presets = {
        "pretrain.compile": "true",
        "pretrain.precision": "bf16",
        "model.low_precision_residual": "true",
    }
    torch._dynamo.reset()
    full = run_pretraining(train_config(**settings, **presets), tokens, tmp_path / "full", device="cpu")
    assert modes == ["default"]  # the trainer compiled the model, with the presets' mode
    fp32 = run_pretraining(train_config(**settings), tokens, tmp_path / "fp32", device="cpu")
    assert len(modes) == 1
    losses, reference = [r["loss"] for r in full.history], [r["loss"] for r in fp32.history]
    # measured: 14.33, 13.85, 13.19, 13.33 in bf16 (compiled), within 0.002 of fp32 (eager) at every
    # log step; the bars: a fall of half the measured one, and bf16's rounding well under 0.1
    assert losses[-1] < losses[0] - 0.5, losses
    assert losses == pytest.approx(reference, abs=0.1) and losses != reference, (losses, reference)
    with pytest.raises(Crash):
        run_pretraining(
            train_config(**settings, **presets),
            tokens,
            tmp_path / "cut",
            device="cpu",
            callbacks=(crash_after(8),),
        )
    trained: list[int] = []
    run_pretraining(
        train_config(**settings, **presets),
        tokens,
        tmp_path / "cut",
        device="cpu",
        callbacks=(lambda trainer: trained.append(trainer.step),),
    )
    assert trained == [7, 8, 9, 10, 11, 12]  # continued from the checkpoint of step 6
    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6, 9, 12]
    assert [r["loss"] for r in rows] == pytest.approx(losses, rel=1e-4)  # as if never killed
    model, _, _ = load_pretrained(tmp_path / "cut")
    assert all(not name.startswith("_orig_mod") for name in model.state_dict())  # saved unwrapped
    torch._dynamo.reset()


def test_load_pretrained_at_a_step_gives_that_checkpoints_weights(tmp_path):
    from vbert.pretraining.checkpoint import load_checkpoint

    tokens = write_tokens(tmp_path / "tokens.jsonl", num_videos=8)
    run = tmp_path / "run"
    run_pretraining(
        train_config(
            **{
                "pretrain.steps": 6,
                "pretrain.checkpoint_every": 2,
                "pretrain.keep_checkpoints": 3,
                "pretrain.log_every": 2,
            }
        ),
        tokens,
        run,
        device="cpu",
    )
    final, _, _ = load_pretrained(run)
    at6, _, _ = load_pretrained(run, step=6)
    at2, vocab, tokenizer = load_pretrained(run, step=2)
    for name, value in final.state_dict().items():
        torch.testing.assert_close(at6.state_dict()[name], value, rtol=0, atol=0)
    saved = load_checkpoint(run / "checkpoints" / "step-0000002.pt")["model"]
    assert all(torch.equal(at2.state_dict()[k], v) for k, v in saved.items())
    assert not torch.equal(
        at2.state_dict()["mlm.bert.embeddings.word_embeddings.weight"],
        final.state_dict()["mlm.bert.embeddings.word_embeddings.weight"],
    )
    assert not at2.training and vocab.text_size == len(tokenizer)
    with pytest.raises(DataError, match=r"no checkpoint of step 3; kept: 2, 4, 6"):
        load_pretrained(run, step=3)
    (run / "checkpoints" / "step-0000004.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="step-0000004.pt: corrupt, truncated or not a vbert checkpoint"):
        load_pretrained(run, step=4)

    # the model's JSON descriptions: guarded by the manifest, and clear errors when the manifest is gone
    config_file = run / "bert_config.json"
    fields = json.loads(config_file.read_text(encoding="utf-8"))
    config_file.write_text(json.dumps({**fields, "num_layers": fields["num_layers"] + 1}), encoding="utf-8")
    with pytest.raises(DataError, match=r"bert_config\.json: does not match its manifest"):
        load_pretrained(run)
    (run / "manifest.json").unlink()
    for broken, message in [
        ({**fields, "colour": "red"}, r"bert_config\.json: not a valid BertConfig"),
        ({**fields, "num_heads": 3}, r"bert_config\.json: not a valid BertConfig"),
        ({**fields, "vocab_size": fields["vocab_size"] + 1}, r"do not fit together"),
    ]:
        config_file.write_text(json.dumps(broken), encoding="utf-8")
        with pytest.raises(DataError, match=message):
            load_pretrained(run)
    config_file.write_text(json.dumps(fields)[:20], encoding="utf-8")
    with pytest.raises(DataError, match=r"bert_config\.json: not readable JSON"):
        load_pretrained(run)


def test_bad_pretraining_inputs_are_refused_before_training(tmp_path):
    tokens = write_tokens(tmp_path / "tokens.jsonl", num_videos=4)
    with pytest.raises(VbertError, match="nothing to resume"):
        run_pretraining(train_config(), tokens, tmp_path / "fresh", resume="require", device="cpu")
    run_pretraining(
        train_config(**{"pretrain.steps": 2, "pretrain.checkpoint_every": 2}),
        tokens,
        tmp_path / "run",
        device="cpu",
    )
    with pytest.raises(DataError, match="another configuration.*model"):
        run_pretraining(
            train_config(**{"pretrain.steps": 4, "model.num_layers": 1}),
            tokens,
            tmp_path / "run",
            device="cpu",
        )
    with pytest.raises(DataError, match="another vocabulary"):
        run_pretraining(train_config(**{"vocab.k": 4}), tokens, tmp_path / "other", device="cpu")
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        run_pretraining(train_config(), tmp_path / "empty.jsonl", tmp_path / "e", device="cpu")
    assert not (tmp_path / "e" / "checkpoints").exists() and not (tmp_path / "other" / "checkpoints").exists()


def test_attention_maps_reproduce_the_fused_layers():
    from vbert.pretraining.videobert import attention_maps

    torch.manual_seed(0)
    cfg = small_config()
    model = build_videobert(cfg, JointVocab(TEXT_V, VISUAL_V)).eval()
    batch = synthetic_batch(4, 32, TEXT_V, VISUAL_V, config=cfg.pretrain)
    mask = batch["attention_mask"].clone()
    mask[0, 20:] = 0  # padding in one row
    maps = attention_maps(model, batch["input_ids"], batch["token_type_ids"], mask)
    assert len(maps) == 2 and maps[0].shape == (4, 2, 32, 32)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(4, 2, 32))  # rows are distributions
    assert float(maps[0][0, :, :, 20:].abs().max()) == 0.0  # padding receives no attention
    x = torch.randn(4, 32, 32)
    layer = model.bert.layers[0].attention
    from vbert.bert.attention import MultiHeadAttention

    readable = MultiHeadAttention(32, 2).load_fused(layer.qkv, layer.out)
    torch.testing.assert_close(readable(x), layer(x), rtol=1e-5, atol=1e-6)  # same weights, same layer


def test_pretrain_command_trains_resumes_and_reports_bad_input_in_one_line(tmp_path, capsys):
    from vbert.cli import main

    tokens = write_tokens(tmp_path / "tokens.jsonl", num_videos=4)
    sets = [
        f"--set={k}={v}"
        for k, v in {
            "model.hidden_size": 32,
            "model.num_layers": 1,
            "model.num_heads": 2,
            "model.intermediate_size": 64,
            "vocab.k": 6,
            "vocab.depth": 2,
            "text.vocab_size": 60,
            "pretrain.steps": 3,
            "pretrain.batch_size": 8,
            "pretrain.max_seq_len": 32,
            "pretrain.max_text_len": 12,
            "pretrain.tensorboard": "false",
        }.items()
    ]
    out = tmp_path / "run"
    # tiny starts the visual rows from centroids: hand-made tokens carry no record of their vocabulary
    assert main(["pretrain", *sets, "--data", str(tokens), "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "visual_init is 'centroids'" in err and "--vocab-file" in err and not out.exists()
    sets.append("--set=pretrain.visual_init=random")
    assert main(["pretrain", *sets, "--data", str(tokens), "--out", str(out), "--device", "cpu"]) == 0
    assert "pretrained 3 steps" in capsys.readouterr().out
    assert (out / "videobert.safetensors").is_file() and (out / "hf" / "config.json").is_file()
    more = [s.replace("pretrain.steps=3", "pretrain.steps=5") for s in sets]
    assert (
        main(["pretrain", *more, "--data", str(tokens), "--out", str(out), "--resume", "--device", "cpu"])
        == 0
    )
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [3, 5]
    assert main(["pretrain", *sets, "--data", str(tmp_path / "none.jsonl"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vbert pretrain: error:") and "none.jsonl" in err and "\n" not in err


def test_cached_pretraining_builds_once_and_the_pipeline_stage_skips_when_complete(tmp_path, monkeypatch):
    from vbert.core.stages import resolve
    from vbert.pretraining.stage import STAGE as PRETRAIN
    from vbert.pretraining.stage import run_stage

    tokens = write_tokens(tmp_path / "run" / "tokenize" / "tokens.jsonl", num_videos=4)
    given = {
        "tokenize": tokens.parent,
        "vocab": tmp_path / "run" / "vocab",
    }  # visual_init random: no vocabulary read
    monkeypatch.setenv("VBERT_CACHE", str(tmp_path / "cache"))
    cfg = train_config(**{"pretrain.steps": 2})
    first = resolve(PRETRAIN, cfg, given=given)
    assert (first / "videobert.safetensors").is_file() and first.parent == tmp_path / "cache"
    weights = (first / "videobert.safetensors").stat().st_mtime_ns
    assert resolve(PRETRAIN, cfg, given=given) == first  # the second call reuses the cache
    assert (first / "videobert.safetensors").stat().st_mtime_ns == weights
    with open(tokens, "a", encoding="utf-8") as handle:  # new visual words under the same config
        handle.write(tokens.read_text(encoding="utf-8").splitlines()[0] + "\n")
    assert resolve(PRETRAIN, cfg, given=given) != first  # a model of other tokens is not reused
    summary = run_stage(cfg, given, tmp_path / "run" / "pretrain", force=False)
    assert summary["steps"] == 2 and (tmp_path / "run" / "pretrain" / "manifest.json").is_file()
    assert run_stage(cfg, given, tmp_path / "run" / "pretrain", force=False)["skipped"] == "complete"
