"""Weight compatibility with transformers: parity of hidden states and MLM logits, round trips, bad checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers

from vbert.bert.hf import export_hf, load_hf_bert
from vbert.bert.model import IGNORE_INDEX, BertConfig, BertForMaskedLM
from vbert.bert.wordpiece import train_wordpiece
from vbert.errors import DataError
from vbert.pretraining.joint_vocab import JointVocab
from vbert.pretraining.saved import export_videobert
from vbert.pretraining.videobert import VideoBertForPretraining

transformers.logging.set_verbosity_error()

HF_CONFIG = {
    "vocab_size": 113,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 40,
    "type_vocab_size": 2,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}


def _hf_mlm() -> transformers.BertForMaskedLM:
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(transformers.BertConfig(**HF_CONFIG)).eval()
    with torch.no_grad():  # non-trivial LayerNorms and biases, so a mix-up cannot hide
        for name, param in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    return model


def _inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, HF_CONFIG["vocab_size"], (3, 14), generator=gen)
    types = torch.zeros_like(ids)
    types[:, 8:] = 1
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    ids[1, 10:] = 0
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hf-mlm")
    _hf_mlm().save_pretrained(str(folder))
    return folder


def test_hidden_states_and_mlm_logits_match_transformers(hf_dir: Path) -> None:
    ours = load_hf_bert(hf_dir).eval()
    theirs_mlm = transformers.BertForMaskedLM.from_pretrained(str(hf_dir)).eval()
    theirs = transformers.BertModel.from_pretrained(str(hf_dir)).eval()
    inputs = _inputs()
    real = inputs["attention_mask"].bool()
    with torch.no_grad():
        hidden = ours.bert(**inputs)
        expected = theirs(**inputs).last_hidden_state
        torch.testing.assert_close(hidden[real], expected[real], rtol=0, atol=1e-5)
        unpadded = {k: v[[0, 2]] for k, v in inputs.items() if k != "attention_mask"}
        torch.testing.assert_close(
            ours.bert(**unpadded), theirs(**unpadded).last_hidden_state, rtol=0, atol=1e-5
        )
        full_logits = theirs_mlm(**inputs).logits  # [B, L, V]
        torch.testing.assert_close(ours(**inputs).logits[real], full_logits[real], rtol=0, atol=1e-5)
        labels = torch.full_like(inputs["input_ids"], IGNORE_INDEX)
        labels[:, 3] = inputs["input_ids"][:, 3]
        out = ours(**inputs, labels=labels)
        torch.testing.assert_close(out.logits, full_logits[:, 3], rtol=0, atol=1e-5)
        torch.testing.assert_close(out.loss, theirs_mlm(**inputs, labels=labels).loss, rtol=0, atol=1e-5)


def test_bertmodel_checkpoint_without_head_loads_pooler_and_initialises_head(tmp_path: Path) -> None:
    torch.manual_seed(0)
    theirs = transformers.BertModel(transformers.BertConfig(**HF_CONFIG)).eval()
    theirs.save_pretrained(str(tmp_path))
    ours = load_hf_bert(tmp_path).eval()
    inputs = _inputs()
    with torch.no_grad():
        expected = theirs(**inputs).pooler_output
        torch.testing.assert_close(ours.bert.pool(ours.bert(**inputs)), expected, rtol=0, atol=1e-5)
    assert torch.all(ours.mlm.bias == 0) and torch.all(ours.mlm.norm.weight == 1)
    assert abs(ours.mlm.dense.weight.std().item() - 0.02) < 0.006


def test_pytorch_model_bin_loads_like_safetensors(hf_dir: Path, tmp_path: Path) -> None:
    model = _hf_mlm()
    model.config.save_pretrained(str(tmp_path))
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    a, b = load_hf_bert(tmp_path), load_hf_bert(hf_dir)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        if not name.startswith("bert.pooler"):  # a BertForMaskedLM file has no pooler: freshly initialised
            assert torch.equal(x, y), name


def test_round_trip_vbert_transformers_vbert_changes_nothing(tmp_path: Path) -> None:
    torch.manual_seed(3)
    ours = BertForMaskedLM(
        BertConfig(
            vocab_size=90,
            hidden_size=32,
            num_layers=2,
            num_heads=4,
            intermediate_size=48,
            max_position_embeddings=30,
        )
    ).eval()
    with torch.no_grad():
        for param in ours.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    export_hf(ours, tmp_path / "export")
    assert load_hf_bert(tmp_path / "export").state_dict().keys() == ours.state_dict().keys()
    mlm = transformers.BertForMaskedLM.from_pretrained(str(tmp_path / "export")).eval()
    ids = torch.randint(5, 90, (2, 11))
    with torch.no_grad():
        torch.testing.assert_close(mlm(input_ids=ids).logits, ours(ids).logits, rtol=0, atol=1e-5)
    mlm.save_pretrained(str(tmp_path / "via-mlm"))  # BertForMaskedLM has no pooler
    encoder = transformers.BertModel.from_pretrained(str(tmp_path / "export"))
    encoder.save_pretrained(str(tmp_path / "via-model"))  # BertModel has no MLM head
    back_mlm, back_model = load_hf_bert(tmp_path / "via-mlm"), load_hf_bert(tmp_path / "via-model")
    for name, value in ours.state_dict().items():
        source = back_model if name.startswith("bert.pooler") else back_mlm
        assert torch.equal(source.state_dict()[name], value), name
        if name.startswith("bert.") and not name.startswith("bert.pooler"):
            assert torch.equal(back_model.state_dict()[name], value), name


def test_fill_mask_pipeline_on_an_exported_directory(tmp_path: Path) -> None:
    corpus = ["chop the onions", "stir the soup", "slice the tomatoes", "fry the chicken"] * 10
    tokenizer = train_wordpiece(corpus, vocab_size=60, out_dir=tmp_path / "tok")
    torch.manual_seed(0)
    ours = BertForMaskedLM(
        BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_layers=1,
            num_heads=2,
            intermediate_size=32,
            max_position_embeddings=16,
        )
    ).eval()
    export_hf(ours, tmp_path / "export", tokenizer=tokenizer)
    fill = transformers.pipeline("fill-mask", model=str(tmp_path / "export"), device="cpu")
    results = fill("stir the [MASK]", top_k=3)
    assert len(results) == 3 and all(r["token_str"] for r in results)
    encoded = tokenizer("stir the [MASK]", return_tensors="pt")
    with torch.no_grad():
        logits = ours(encoded["input_ids"]).logits[
            0, encoded["input_ids"][0].tolist().index(tokenizer.mask_token_id)
        ]
    assert results[0]["token"] == int(logits.argmax())
    assert results[0]["score"] == pytest.approx(float(logits.softmax(-1).max()), abs=1e-5)


# ---------------------------------------------------------------- bad checkpoints


def test_shapes_that_do_not_fit_the_config_are_refused(hf_dir: Path, tmp_path: Path) -> None:
    for name in ("model.safetensors", "config.json"):
        (tmp_path / name).write_bytes((hf_dir / name).read_bytes())
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    config["vocab_size"] = 200
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(
        DataError,
        match=r"model.safetensors: tensor for bert.embeddings.word_embeddings.weight "
        r"has shape \(113, 32\), but .*config.json implies \(200, 32\)",
    ):
        load_hf_bert(tmp_path)
    config["vocab_size"], config["num_hidden_layers"] = 113, 3
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(DataError, match=r"model.safetensors: missing encoder.layer.2.attention.self.query"):
        load_hf_bert(tmp_path)
    config["num_hidden_layers"] = 1
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(DataError, match=r"layers 1 beyond the 1"):
        load_hf_bert(tmp_path)


def test_missing_config_weights_or_corrupt_files_are_refused(hf_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="config.json: missing"):
        load_hf_bert(tmp_path)
    (tmp_path / "config.json").write_bytes((hf_dir / "config.json").read_bytes())
    with pytest.raises(DataError, match="no weights found"):
        load_hf_bert(tmp_path)
    (tmp_path / "model.safetensors").write_bytes((hf_dir / "model.safetensors").read_bytes()[:500])
    with pytest.raises(DataError, match="model.safetensors: corrupt, truncated or not a weight file"):
        load_hf_bert(tmp_path)
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="config.json: not valid JSON"):
        load_hf_bert(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "bert", "hidden_size": 32}), encoding="utf-8"
    )
    with pytest.raises(DataError, match="config.json: missing field.*vocab_size"):
        load_hf_bert(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**HF_CONFIG, "hidden_act": "relu"}), encoding="utf-8")
    with pytest.raises(DataError, match="hidden_act 'relu' is not supported"):
        load_hf_bert(tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        load_hf_bert(tmp_path / "nowhere")


def test_config_values_and_weights_that_are_not_numbers_are_refused(hf_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    (tmp_path / "config.json").write_bytes((hf_dir / "config.json").read_bytes())
    for field, value in [
        ("num_attention_heads", 0),
        ("hidden_size", 32.0),
        ("hidden_size", "32"),
        ("num_hidden_layers", True),
    ]:
        (tmp_path / "config.json").write_text(json.dumps({**HF_CONFIG, field: value}), encoding="utf-8")
        with pytest.raises(
            DataError, match=rf"config\.json: {field} must be a positive integer, got {value!r}"
        ):
            load_hf_bert(tmp_path)
    (tmp_path / "config.json").write_bytes((hf_dir / "config.json").read_bytes())
    state = load_file(str(hf_dir / "model.safetensors"))
    name = next(k for k in state if k.endswith("word_embeddings.weight"))
    state[name][3, 5] = float("nan")
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(DataError, match=rf"model\.safetensors: {name} holds NaN or infinite values"):
        load_hf_bert(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save({**load_file(str(hf_dir / "model.safetensors")), "extra": 7}, tmp_path / "pytorch_model.bin")
    with pytest.raises(DataError, match=r"pytorch_model\.bin: extra is a int, not a tensor"):
        load_hf_bert(tmp_path)


def test_sharded_checkpoints_and_old_layernorm_names(hf_dir: Path, tmp_path: Path) -> None:
    reference = load_hf_bert(hf_dir).state_dict()
    model = _hf_mlm()
    model.save_pretrained(str(tmp_path / "sharded"), max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 1
    for name, value in load_hf_bert(tmp_path / "sharded").state_dict().items():
        if not name.startswith("bert.pooler"):
            assert torch.equal(value, reference[name]), name
    old = (
        tmp_path / "tf-names"
    )  # checkpoints converted from TensorFlow call LayerNorm's parameters gamma/beta
    model.config.save_pretrained(str(old))
    renamed = {
        k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
        for k, v in model.state_dict().items()
    }
    torch.save(renamed, old / "pytorch_model.bin")
    assert torch.equal(
        load_hf_bert(old).state_dict()["bert.layers.1.ffn_norm.weight"],
        reference["bert.layers.1.ffn_norm.weight"],
    )
    index = tmp_path / "sharded" / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"x": "../outside.safetensors"}}), encoding="utf-8")
    with pytest.raises(DataError, match="outside the directory"):
        load_hf_bert(tmp_path / "sharded")


# ---------------------------------------------------------------- VideoBERT's export: the joint vocabulary


def test_videobert_export_reads_visual_words_by_name_and_matches_vbert_on_a_joint_sequence(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    corpus = ["chop the onions", "stir the soup", "slice the tomatoes", "add the salt to the pan"] * 10
    tokenizer = train_wordpiece(corpus, vocab_size=60, out_dir=tmp_path / "tok")
    vocab = JointVocab.from_tokenizer(tokenizer, visual_size=9)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab.size,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        intermediate_size=48,
        max_position_embeddings=40,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )
    model = VideoBertForPretraining(config, vocab).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    export_videobert(model, vocab, tokenizer, tmp_path / "export")
    transformers.logging.set_verbosity_warning()  # the load report (unexpected weights) is a warning
    try:
        hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "export"))
        mlm = transformers.BertForMaskedLM.from_pretrained(str(tmp_path / "export")).eval()
        fill = transformers.pipeline("fill-mask", model=str(tmp_path / "export"), device="cpu")
    finally:
        transformers.logging.set_verbosity_error()
    assert len(hf_tokenizer) == vocab.size == mlm.config.vocab_size
    assert "UNEXPECTED" not in caplog.text and "MISSING" not in caplog.text

    # the joint string reads as vbert's own sequence: [CLS] text [>] video [SEP]
    text = tokenizer("add the [MASK] to the pan", add_special_tokens=False)["input_ids"]
    ids, types = vocab.sequence(text, vocab.visual_ids([3, 0, 8, 8]))
    encoded = hf_tokenizer("add the [MASK] to the pan [>] [V3] [V0][V8] [V8]")["input_ids"]
    assert encoded == ids.tolist()
    assert hf_tokenizer.convert_ids_to_tokens(ids.tolist()[-5:]) == ["[V3]", "[V0]", "[V8]", "[V8]", "[SEP]"]
    ids_t, types_t = torch.from_numpy(ids)[None], torch.from_numpy(types)[None]  # [1, L]
    with torch.no_grad():
        ours = model.mlm(ids_t, types_t).logits  # [1, L, V]
        theirs = mlm(input_ids=ids_t, token_type_ids=types_t).logits
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)

    # fill-mask on a joint string works and names the visual words it predicts
    guesses = fill("add the salt [>] [V3] [MASK] [V8]", top_k=vocab.size)
    names = {g["token_str"] for g in guesses}
    assert {"[V0]", "[V8]", "[>]"} <= names and len(guesses) == vocab.size
    assert all("[V" in g["sequence"] for g in guesses)


def test_export_refuses_a_tokenizer_smaller_than_the_model(tmp_path: Path) -> None:
    tokenizer = train_wordpiece(["stir the soup"] * 10, vocab_size=30, out_dir=tmp_path / "tok")
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=len(tokenizer) + 3, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=32
        )
    )
    with pytest.raises(ValueError, match=r"has \d+ tokens and 0 extra tokens.*name the other ids"):
        export_hf(model, tmp_path / "export", tokenizer)
    with pytest.raises(ValueError, match="already in the tokenizer"):
        export_hf(model, tmp_path / "export", tokenizer, extra_tokens=["[CLS]", "[V1]", "[>]"])
