"""YouCook2 annotations and HowTo100M-style captions: same in-memory form, bad entries named or recorded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vbert.data.dataset import Failure
from vbert.data.howto100m import attach_narrations, load_captions, normalise
from vbert.data.video import write_video
from vbert.data.youcook2 import load_youcook2, parse_entry
from vbert.errors import DataError


def _entry(duration=30.0, segments=((1.0, 5.0), (6.0, 12.5)), subset="training"):
    return {
        "duration": duration,
        "subset": subset,
        "recipe_type": "113",
        "video_url": "https://example.org/v",
        "annotations": [
            {"id": i, "segment": list(seg), "sentence": f"step {i} of the recipe"}
            for i, seg in enumerate(segments)
        ],
    }


def _write(tmp_path, database, name="annotations.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"database": database}), encoding="utf-8")
    return path


def test_reads_youcook2_format_without_verbs(tmp_path):
    path = _write(tmp_path, {"abc": _entry(), "xyz": _entry(subset="validation")})
    dataset = load_youcook2(path)
    assert sorted(dataset.videos) == ["abc", "xyz"] and dataset.failures == []
    record = dataset.videos["abc"]
    assert record.duration == 30.0 and record.subset == "training" and record.recipe_type == "113"
    assert [(s.start, s.end) for s in record.segments] == [(1.0, 5.0), (6.0, 12.5)]
    assert record.segments[0].verb is None and record.path is None
    assert [v.video_id for v in load_youcook2(path, subsets=["validation"]).videos.values()] == ["xyz"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"annotations": [], "subset": "training"}, "missing field.*duration"),
        (
            {**_entry(), "annotations": [{"id": 0, "segment": [1, 2]}]},
            "annotation 0 is missing field.*sentence",
        ),
        (_entry(segments=((1.0, 45.0),)), r"segment \[1.0, 45.0\] is outside the video"),
        (_entry(segments=((-2.0, 3.0),)), "outside the video"),
        (
            {
                **_entry(),
                "annotations": [
                    {"id": 3, "segment": [1, 2], "sentence": "a"},
                    {"id": 3, "segment": [4, 5], "sentence": "b"},
                ],
            },
            "annotation 1 repeats the id 3 of an earlier annotation",
        ),
        (_entry(segments=((5.0, 2.0),)), r"segment \[5.0, 2.0\] has its end before its start"),
        (_entry(segments=((3.0, 3.0),)), r"segment \[3.0, 3.0\] is empty"),
        ({**_entry(), "annotations": [{"id": 0, "segment": [1], "sentence": "x"}]}, r"is not \[start, end\]"),
        (
            {**_entry(), "annotations": [{"id": 0, "segment": [True, 3], "sentence": "x"}]},
            r"is not \[start, end\]",
        ),
        (
            {**_entry(), "annotations": [{"id": 0, "segment": [1, float("inf")], "sentence": "x"}]},
            "non-finite time",
        ),
        (_entry(duration=-1), "not positive"),
        (_entry(duration="inf"), "duration 'inf' is not a finite number"),
        (_entry(duration=float("nan")), "is not a finite number"),
        (_entry(duration=True), "duration True is not a number"),
        ({**_entry(), "subset": None}, "subset None is not a string"),
        (
            {**_entry(), "annotations": [{"id": "abc", "segment": [1, 2], "sentence": "x"}]},
            "annotation 0 id 'abc' is not an integer",
        ),
        (
            {**_entry(), "annotations": [{"id": None, "segment": [1, 2], "sentence": "x"}]},
            "annotation 0 id None is not an integer",
        ),
        (
            {**_entry(), "annotations": [{"id": 1.5, "segment": [1, 2], "sentence": "x"}]},
            "annotation 0 id 1.5 is not an integer",
        ),
        (
            {**_entry(), "annotations": [{"id": 0, "segment": [1, 2], "sentence": 5}]},
            "annotation 0 sentence 5 is not a string",
        ),
        (
            {**_entry(), "annotations": [{"id": 0, "segment": [1, 2], "sentence": "  "}]},
            "annotation 0 has an empty sentence",
        ),
        (
            {**_entry(), "annotations": [{"id": 0, "segment": [1, 2], "sentence": "x", "verb": 5}]},
            "annotation 0 verb 5 is not a string",
        ),
        (
            {**_entry(), "annotations": [{"id": 7, "segment": [1, 2], "sentence": "x", "sentences": []}]},
            r"annotation 0 \(id 7\): sentences is empty",
        ),
        (
            {
                **_entry(),
                "annotations": [{"id": 7, "segment": [1, 2], "sentence": "x", "sentences": ["x", " "]}],
            },
            r"annotation 0 \(id 7\): reference caption 1 ' ' is empty",
        ),
        (
            {**_entry(), "annotations": [{"id": 7, "segment": [1, 2], "sentence": "x", "sentences": "x"}]},
            r"annotation 0 \(id 7\): sentences 'x' is not a list",
        ),
        (
            {**_entry(), "annotations": [{"id": 7, "segment": [1, 2], "sentence": "x", "occluded": "yes"}]},
            "annotation 0 occluded 'yes' is not true or false",
        ),
        (
            {**_entry(), "annotations": [{"id": 0, "segment": [1, 2], "sentence": "x", "noun": ["egg"]}]},
            r"annotation 0 noun \['egg'\] is not a string",
        ),
    ],
)
def test_bad_entry_alone_raises_and_in_batch_is_recorded(tmp_path, entry, message):
    with pytest.raises(DataError, match=f"ann.json: video bad: .*{message}"):
        parse_entry("bad", entry, tmp_path / "ann.json")
    path = _write(tmp_path, {"good": _entry(), "bad": entry}, name="ann.json")
    dataset = load_youcook2(path)
    assert list(dataset.videos) == ["good"]
    assert len(dataset.failures) == 1 and dataset.failures[0].item == "bad"
    assert "ann.json" in dataset.failures[0].reason
    with pytest.raises(DataError, match="video bad"):
        load_youcook2(path, strict=True)


def test_verbs_nouns_and_ids_of_synthcook_annotations(tmp_path):
    entry = _entry()
    entry["annotations"][0].update(id="7", verb="cut", noun="egg")
    entry["annotations"][1].update(id=3.0, verb=None, noun=None)
    other = _entry()
    other["annotations"][0].update(verb="stir", noun="rice")
    dataset = load_youcook2(_write(tmp_path, {"v1": entry, "v2": other}))
    assert dataset.failures == [] and [s.id for s in dataset.videos["v1"].segments] == [7, 3]
    assert dataset.verbs == ["cut", "stir"] and dataset.nouns == ["egg", "rice"]
    assert dataset.videos["v1"].segments[1].verb is None


def test_bad_annotation_files(tmp_path):
    with pytest.raises(DataError, match="missing.json: annotation file not found"):
        load_youcook2(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="broken.json: not readable JSON"):
        load_youcook2(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"videos": {}}), encoding="utf-8")
    with pytest.raises(DataError, match="wrong.json: expected a JSON object with a 'database'"):
        load_youcook2(wrong)


def test_video_folder_finds_files_and_records_missing_ones(tmp_path):
    frames = np.zeros((4, 16, 16, 3), dtype=np.uint8)
    write_video(tmp_path / "videos" / "training" / "abc.mp4", frames, 20.0)
    path = _write(tmp_path, {"abc": _entry(), "gone": _entry()})
    dataset = load_youcook2(path, video_dir=tmp_path / "videos")
    assert dataset.videos["abc"].path == tmp_path / "videos" / "training" / "abc.mp4"
    assert [f.item for f in dataset.failures] == ["gone"] and "no video file" in dataset.failures[0].reason


def test_captions_json_split_into_timed_words(tmp_path):
    path = tmp_path / "raw_caption.json"
    path.write_text(
        json.dumps({"v1": {"text": ["Now, ADD the salt!", "ok"], "start": [2.0, 5.0], "end": [4.0, 5.5]}}),
        encoding="utf-8",
    )
    narration = load_captions(path)["v1"]
    assert narration.words == ["now", "add", "the", "salt", "ok"]
    assert narration.starts == [2.0, 2.5, 3.0, 3.5, 5.0] and narration.ends == [2.5, 3.0, 3.5, 4.0, 5.5]
    assert normalise("It's  GREAT.") == ["its", "great"]


def test_captions_csv_folder(tmp_path):
    folder = tmp_path / "captions"
    folder.mkdir()
    (folder / "v2.csv").write_text("start,end,text\n0.5,1.5,stir the pot\n2,3,done\n", encoding="utf-8")
    (folder / "v3.csv").write_text("begin,stop,words\n1,2,x\n", encoding="utf-8")
    with pytest.raises(DataError, match="v3.csv: .*start, end and text"):
        load_captions(folder)
    failures: list[Failure] = []
    captions = load_captions(folder, failures=failures)
    assert captions["v2"].words == ["stir", "the", "pot", "done"] and [f.item for f in failures] == ["v3"]


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("short.csv", b"start,end,text\n0,1\n", r"short.csv: line 2 has no text value"),
        (
            "extra.csv",
            b"start,end,text\n0,1,salt, pepper\n",
            r"extra.csv: line 2 has more fields than the header",
        ),
        ("latin.csv", b"start,end,text\n0,1,cr\xe8me\n", r"latin.csv: not a readable UTF-8 CSV file"),
        (
            "huge.csv",
            b"start,end,text\n0,1," + b"x" * 200_000 + b"\n",
            r"huge.csv: not a readable UTF-8 CSV file",
        ),
        ("inf.csv", b"start,end,text\n0,inf,salt\n", r"inf.csv: video inf: entry 0 has non-finite times"),
    ],
)
def test_bad_caption_csv_files_named_or_recorded(tmp_path, name, body, message):
    folder = tmp_path / "captions"
    folder.mkdir()
    (folder / "good.csv").write_text("start,end,text\n0,1,add salt\n", encoding="utf-8")
    (folder / name).write_bytes(body)
    with pytest.raises(DataError, match=message):
        load_captions(folder)
    failures: list[Failure] = []
    captions = load_captions(folder, failures=failures)
    assert list(captions) == ["good"] and captions["good"].words == ["add", "salt"]
    assert len(failures) == 1 and failures[0].item == name[:-4]
    assert failures[0].reason.startswith(str(folder / name)) and len(failures[0].reason.split(name)) == 2


def test_caption_folder_without_caption_files_is_an_error(tmp_path):
    folder = tmp_path / "captions"
    folder.mkdir()
    with pytest.raises(DataError, match="captions: the caption folder holds no <video_id>.csv files$"):
        load_captions(folder, failures=[])
    (folder / "raw_caption.json").write_text("{}", encoding="utf-8")
    with pytest.raises(DataError, match="captions: .*no <video_id>.csv files .*pass the file itself"):
        load_captions(folder)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"text": ["a"], "start": [0.0]}, "missing end"),
        ({"text": ["a", "b"], "start": [0.0], "end": [1.0]}, "2 texts but 1 starts"),
        ({"text": ["a"], "start": [3.0], "end": [1.0]}, "out of order"),
        ({"text": ["a"], "start": ["soon"], "end": [1.0]}, "non-numeric"),
        ({"text": ["a"], "start": [False], "end": [1.0]}, "non-numeric"),
        (
            {"text": ["a b"], "start": [0.0], "end": [float("inf")]},
            r"entry 0 has non-finite times \[0.0, inf\]",
        ),
        ({"text": ["a", None], "start": [0.0, 1.0], "end": [1.0, 2.0]}, "entry 1 text None is not a string"),
        ({"text": [5], "start": [0.0], "end": [1.0]}, "entry 0 text 5 is not a string"),
    ],
)
def test_bad_captions_named_or_recorded(tmp_path, entry, message):
    path = tmp_path / "caps.json"
    path.write_text(
        json.dumps({"ok": {"text": ["hi"], "start": [0], "end": [1]}, "bad": entry}), encoding="utf-8"
    )
    with pytest.raises(DataError, match=f"caps.json: video bad: .*{message}"):
        load_captions(path)
    failures: list[Failure] = []
    assert list(load_captions(path, failures=failures)) == ["ok"] and failures[0].item == "bad"


def test_captions_attach_to_youcook2_records(tmp_path):
    annotations = _write(tmp_path, {"v1": _entry()})
    captions = tmp_path / "caps.json"
    captions.write_text(
        json.dumps({"v1": {"text": ["cut it"], "start": [1.0], "end": [2.0]}}), encoding="utf-8"
    )
    dataset = attach_narrations(load_youcook2(annotations), load_captions(captions))
    narration = dataset.videos["v1"].narration
    assert narration is not None and narration.words == ["cut", "it"]
    assert [s.text for s in narration.sentences()] == ["cut it"]
