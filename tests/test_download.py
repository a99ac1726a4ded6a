"""data_scripts/download_youcook2.py, offline: a local HTTP server serves a fixture archive; yt-dlp is replaced."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import subprocess
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vbert.errors import DataError

SCRIPT = Path(__file__).resolve().parents[1] / "data_scripts" / "download_youcook2.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("download_youcook2", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dl = _load_script()

DATABASE = {
    vid: {
        "duration": 60.0,
        "subset": subset,
        "recipe_type": "101",
        "video_url": f"https://www.youtube.com/watch?v={vid}",
        "annotations": [{"id": 0, "segment": [1, 9], "sentence": "crack an egg"}],
    }
    for vid, subset in [
        ("aaa", "validation"),
        ("bbb", "validation"),
        ("ccc", "validation"),
        ("ddd", "training"),
    ]
}


def _tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


@pytest.fixture()
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/served; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()
    body = json.dumps({"database": DATABASE}).encode("utf-8")
    _tar(
        served / "youcookii_annotations_trainval.tar.gz",
        {
            "YouCookII/annotations/youcookii_annotations_trainval.json": body,
            "YouCookII/README.md": b"fixture",
        },
    )
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def test_fetch_and_unpack_annotations_from_local_server(server, tmp_path, capsys):
    base, served = server
    url = f"{base}/youcookii_annotations_trainval.tar.gz"
    digest = hashlib.sha256((served / "youcookii_annotations_trainval.tar.gz").read_bytes()).hexdigest()
    out = tmp_path / "yc2"
    assert dl.main(["--out", str(out), "--url", url, "--sha256", digest, "--skip-videos"]) == 0
    found = dl.find_annotations(out / "annotations")
    assert found.name == "youcookii_annotations_trainval.json"
    assert "4 videos" in capsys.readouterr().out


def test_checksum_mismatch_and_missing_url(server, tmp_path, capsys):
    base, _ = server
    url = f"{base}/youcookii_annotations_trainval.tar.gz"
    assert dl.main(["--out", str(tmp_path / "a"), "--url", url, "--sha256", "0" * 64, "--skip-videos"]) == 2
    assert "SHA-256" in capsys.readouterr().err
    assert not (tmp_path / "a" / "youcookii_annotations_trainval.tar.gz").exists()
    with pytest.raises(DataError, match="nothing.tar.gz: download failed"):
        dl.fetch(f"{base}/nothing.tar.gz", tmp_path / "b" / "x.tar.gz")


@pytest.mark.parametrize(
    ("members", "links"),
    [
        ({"../evil.txt": b"x"}, None),
        ({"ok/../../evil.txt": b"x"}, None),
        ({"/tmp/evil.txt": b"x"}, None),
        ({"ok.txt": b"x"}, {"link": "../../etc/passwd"}),
    ],
)
def test_unsafe_archives_are_refused_and_write_nothing(tmp_path, members, links):
    archive = _tar(tmp_path / "bad.tar.gz", {"first.txt": b"fine", **members}, links)
    out = tmp_path / "deep" / "out"
    with pytest.raises(DataError, match="outside|link or special"):
        dl.safe_extract(archive, out)
    assert not (tmp_path / "deep" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not (out / "first.txt").exists()  # checked before anything is written


def test_not_an_archive(tmp_path):
    fake = tmp_path / "fake.tar.gz"
    fake.write_text("<html>not found</html>", encoding="utf-8")
    with pytest.raises(DataError, match="fake.tar.gz: not a readable tar archive"):
        dl.safe_extract(fake, tmp_path / "out")


class FakeYtDlp:
    """Stands in for subprocess.run: 'downloads' some ids, fails others like a removed video."""

    def __init__(self, unavailable: set[str]):
        self.unavailable = unavailable
        self.calls: list[list[str]] = []

    def __call__(self, cmd, **kwargs):
        assert isinstance(cmd, list) and all(isinstance(a, str) for a in cmd)  # an argument list, no shell
        assert "shell" not in kwargs
        self.calls.append(cmd)
        template = cmd[cmd.index("--output") + 1]
        video_id = Path(template).name.split(".")[0]
        if video_id in self.unavailable:
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: [youtube] Video unavailable")
        Path(template.replace("%(ext)s", "mp4")).write_bytes(b"video bytes")
        return subprocess.CompletedProcess(cmd, 0, "", "")


def test_videos_resumable_with_limit_split_and_missing_list(tmp_path):
    fake = FakeYtDlp(unavailable={"bbb"})
    root = tmp_path / "videos"
    obtained, missing = dl.download_videos(DATABASE, root, ("validation",), limit=2, run=fake)
    assert obtained == ["aaa"] and list(missing) == ["bbb"] and "unavailable" in missing["bbb"]
    assert len(fake.calls) == 2 and fake.calls[0][0] == "yt-dlp" and fake.calls[0][-1].endswith("v=aaa")
    assert fake.calls[0][-2] == "--"  # the URL can never be read as an option
    # second run: 'aaa' is on disk and is not fetched again; no limit now
    obtained, missing = dl.download_videos(DATABASE, root, ("validation",), run=fake)
    assert obtained == ["aaa", "ccc"] and list(missing) == ["bbb"]
    assert [c[-1][-3:] for c in fake.calls[2:]] == ["bbb", "ccc"]
    assert not (root / "training").exists()  # the split option kept training videos out
    dl.write_missing(tmp_path / "missing_videos.tsv", missing)
    assert (tmp_path / "missing_videos.tsv").read_text(encoding="utf-8").startswith("bbb\t")


def test_main_downloads_and_writes_missing(server, tmp_path, monkeypatch, capsys):
    base, _ = server
    fake = FakeYtDlp(unavailable={"ccc", "ddd"})
    monkeypatch.setattr(dl.subprocess, "run", fake)
    out = tmp_path / "yc2"
    assert (
        dl.main(
            ["--out", str(out), "--url", f"{base}/youcookii_annotations_trainval.tar.gz", "--split", "all"]
        )
        == 0
    )
    assert "2 obtained, 2 missing" in capsys.readouterr().out
    lines = (out / "missing_videos.tsv").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[0] for line in lines] == ["ccc", "ddd"]
    assert (out / "videos" / "validation" / "aaa.mp4").is_file()


UNSAFE_IDS = ["../../../../tmp/evil", "%(title)s", "a/b", "..", "", "ok\nfake\tline", "-o x", "abc.mp4", "é1"]


def test_unsafe_video_ids_are_recorded_as_missing_and_never_passed_to_yt_dlp(tmp_path):
    entry = DATABASE["aaa"]
    database = {
        **DATABASE,
        **{vid: entry for vid in UNSAFE_IDS},
        "not-an-entry": ["validation"],
        "Ab_9-xYz": {**entry, "video_url": 5},
    }
    fake = FakeYtDlp(unavailable=set())
    root = tmp_path / "deep" / "videos"
    obtained, missing = dl.download_videos(database, root, ("validation",), run=fake)
    assert obtained == ["aaa", "bbb", "ccc"] and len(fake.calls) == 3
    assert all(
        c[c.index("--output") + 1] == str(root / "validation" / f"{c[-1][-3:]}.%(ext)s") for c in fake.calls
    )
    assert sorted(missing) == sorted([*UNSAFE_IDS, "not-an-entry", "Ab_9-xYz"])
    assert all("not a YouTube id" in missing[vid] for vid in UNSAFE_IDS)
    assert (
        "not a JSON object" in missing["not-an-entry"]
        and "video_url 5 is not a string" in missing["Ab_9-xYz"]
    )
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["aaa.mp4", "bbb.mp4", "ccc.mp4"]
    dl.write_missing(tmp_path / "missing_videos.tsv", missing)
    lines = (tmp_path / "missing_videos.tsv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(missing) and all(line.count("\t") == 1 for line in lines)
    assert "ok fake line\tvideo id is not a YouTube id" in "\n".join(lines)
    with pytest.raises(DataError, match="is not a YouTube id"):
        dl.yt_dlp_command("yt-dlp", "https://example.org", root, "../evil")


def test_output_template_keeps_percent_signs_in_the_folder_literal(tmp_path):
    cmd = dl.yt_dlp_command("yt-dlp", "https://example.org", tmp_path / "100%(id)s", "Ab_9-xYz")
    assert cmd[cmd.index("--output") + 1] == str(tmp_path / "100%%(id)s" / "Ab_9-xYz.%(ext)s")
    assert dl.is_video_id("dQw4w9WgXcQ") and not dl.is_video_id("dQw4w9WgXcQ\n") and not dl.is_video_id(5)


def test_missing_yt_dlp_is_a_clear_error(tmp_path):
    def absent(cmd, **kwargs):
        raise FileNotFoundError(cmd[0])

    with pytest.raises(DataError, match="yt-dlp not found"):
        dl.download_videos(DATABASE, tmp_path, ("training",), run=absent)
