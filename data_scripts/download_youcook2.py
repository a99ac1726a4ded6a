"""Download YouCook2: the official annotation archive, then the videos with yt-dlp.

    python data_scripts/download_youcook2.py --out data/youcook2 --split validation --limit 50

1. Fetches the annotation archive (checked: optional SHA-256, a readable tar.gz, no member
   that escapes the output folder, and an annotation JSON in YouCook2 format inside).
2. Downloads each video of the chosen split with yt-dlp, called as a subprocess with an
   argument list. Videos already on disk are skipped, so an interrupted run resumes.
3. Writes `missing_videos.tsv` (video id, reason): many YouTube videos are gone, and every
   later stage runs on the videos that could be had.

The result is read by `vbert.data.youcook2.load_youcook2(annotations, video_dir=out/"videos")`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from vbert.data.youcook2 import read_annotation_file
from vbert.errors import DataError

ANNOTATION_URL = "http://youcook2.eecs.umich.edu/static/YouCookII/youcookii_annotations_trainval.tar.gz"
ANNOTATION_NAME = "youcookii_annotations_trainval.json"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm")
# YouTube video ids: the only ids turned into file names and yt-dlp output templates (no path
# separators, no `..`, no `%(field)s` that would let the remote metadata choose the name)
VIDEO_ID = re.compile(r"[A-Za-z0-9_-]+")
# a small, widely available format: at most 480p mp4 (decoding resizes to 224 or less anyway)
YT_FORMAT = "bv*[height<=480][ext=mp4]+ba[ext=m4a]/b[height<=480]/b"


def fetch(url: str, dest: Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` (via a .part file), checking the SHA-256 when given."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            while block := response.read(1 << 20):
                digest.update(block)
                out.write(block)
    except OSError as err:
        part.unlink(missing_ok=True)
        raise DataError(f"{url}: download failed ({err})") from None
    if sha256 and digest.hexdigest() != sha256.lower():
        part.unlink(missing_ok=True)
        raise DataError(f"{url}: SHA-256 is {digest.hexdigest()}, expected {sha256}")
    os.replace(part, dest)
    return dest


def _member_target(root: Path, name: str) -> Path:
    """Where an archive member would land, refusing absolute paths and `..` escapes."""
    pure = PurePosixPath(name)
    if (
        pure.is_absolute()
        or name.startswith(("/", "\\"))
        or ".." in pure.parts
        or re.match(r"^[A-Za-z]:", name)
    ):
        raise DataError(f"archive member {name!r} would be written outside {root}")
    target = (root / pure).resolve()
    if target != root and root not in target.parents:
        raise DataError(f"archive member {name!r} would be written outside {root}")
    return target


def safe_extract(archive: Path, out_dir: Path) -> list[Path]:
    """Unpack a tar archive into `out_dir`, refusing escapes, links and device files before writing anything."""
    root = out_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:  # check everything first: an unsafe archive writes nothing
                _member_target(root, member.name)
                if not (member.isfile() or member.isdir()):
                    raise DataError(f"{archive}: member {member.name!r} is a link or special file; refused")
            written = []
            for member in members:
                target = _member_target(root, member.name)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    raise DataError(f"{archive}: member {member.name!r} cannot be read")
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                written.append(target)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{archive}: not a readable tar archive ({err})") from None
    return written


def find_annotations(folder: Path) -> Path:
    """The YouCook2 annotation JSON inside an unpacked archive, checked to be in the right format."""
    found = sorted(folder.rglob(ANNOTATION_NAME)) or sorted(folder.rglob("*annotations*.json"))
    if not found:
        raise DataError(f"{folder}: the archive holds no {ANNOTATION_NAME}")
    database = read_annotation_file(found[0])
    if not database:
        raise DataError(f"{found[0]}: the annotation database is empty")
    return found[0]


def existing_video(video_dir: Path, video_id: str) -> Path | None:
    """A video already downloaded for `video_id`, if any (this is what makes the run resumable)."""
    for suffix in VIDEO_SUFFIXES:
        path = video_dir / f"{video_id}{suffix}"
        if path.is_file() and path.stat().st_size > 0:
            return path
    return None


def is_video_id(video_id: object) -> bool:
    """Whether `video_id` looks like a YouTube id (letters, digits, '-' and '_'), safe as a file name."""
    return isinstance(video_id, str) and VIDEO_ID.fullmatch(video_id) is not None


def yt_dlp_command(yt_dlp: str, url: str, video_dir: Path, video_id: str) -> list[str]:
    """The yt-dlp argument list for one video (never a shell string); `video_id` must pass `is_video_id`."""
    if not is_video_id(video_id):
        raise DataError(f"video id {video_id!r} is not a YouTube id; refused as a file name")
    # '%' in the folder is a literal percent sign, not the start of a yt-dlp template field
    template = os.path.join(str(video_dir).replace("%", "%%"), f"{video_id}.%(ext)s")
    return [
        yt_dlp,
        "--no-playlist",
        "--no-progress",
        "--quiet",
        "--format",
        YT_FORMAT,
        "--merge-output-format",
        "mp4",
        "--output",
        template,
        "--",
        url,
    ]


def download_videos(
    database: dict,
    video_root: Path,
    splits: tuple[str, ...],
    limit: int | None = None,
    yt_dlp: str = "yt-dlp",
    timeout: float = 600.0,
    run: Callable[..., subprocess.CompletedProcess] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Download the videos of `splits` (at most `limit` attempts); return (obtained ids, {missing id: reason})."""
    run = run or subprocess.run
    obtained, missing = [], {}
    attempts = 0
    for video_id, entry in sorted(database.items()):
        if not isinstance(entry, dict):
            missing[video_id] = "annotation entry is not a JSON object; not downloaded"
            continue
        subset = entry.get("subset", "")
        if subset not in splits:
            continue
        if not is_video_id(video_id):
            missing[video_id] = (
                "video id is not a YouTube id (letters, digits, '-' and '_' only); not downloaded"
            )
            continue
        url = entry.get("video_url") or f"https://www.youtube.com/watch?v={video_id}"
        if not isinstance(url, str):
            missing[video_id] = f"video_url {url!r} is not a string; not downloaded"[:300]
            continue
        video_dir = video_root / subset
        if existing_video(video_dir, video_id):
            obtained.append(video_id)
            continue
        if limit is not None and attempts >= limit:
            break
        attempts += 1
        video_dir.mkdir(parents=True, exist_ok=True)
        try:
            result = run(
                yt_dlp_command(yt_dlp, url, video_dir, video_id),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError:
            raise DataError(
                f"{yt_dlp}: yt-dlp not found (pip install yt-dlp, or pass --yt-dlp PATH)"
            ) from None
        except subprocess.TimeoutExpired:
            missing[video_id] = f"timed out after {timeout:.0f} s"
            continue
        if result.returncode == 0 and existing_video(video_dir, video_id):
            obtained.append(video_id)
        else:
            lines = (result.stderr or result.stdout or "").strip().splitlines()
            missing[video_id] = (lines[-1] if lines else f"yt-dlp exited with {result.returncode}")[:300]
    return obtained, missing


def _one_field(text: str) -> str:
    """`text` with tabs and line breaks made spaces, so it stays one TSV field."""
    return re.sub(r"[\t\r\n\v\f\x1c-\x1e\x85\u2028\u2029]", " ", text)


def write_missing(path: Path, missing: dict[str, str]) -> None:
    """Write the videos that could not be had, one `video_id<TAB>reason` per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{_one_field(vid)}\t{_one_field(reason)}" for vid, reason in sorted(missing.items())]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/youcook2"), help="output folder")
    parser.add_argument("--url", default=ANNOTATION_URL, help="annotation archive URL")
    parser.add_argument("--sha256", default=None, help="expected SHA-256 of the archive (checked when given)")
    parser.add_argument("--split", choices=("training", "validation", "all"), default="validation")
    parser.add_argument("--limit", type=int, default=None, help="try at most this many new videos")
    parser.add_argument("--skip-videos", action="store_true", help="fetch the annotations only")
    parser.add_argument("--yt-dlp", dest="yt_dlp", default="yt-dlp", help="the yt-dlp executable")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per video")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Fetch and check the annotations, download the videos, write the missing list; print counts."""
    args = parse_args(argv)
    out: Path = args.out
    try:
        archive = out / Path(args.url.split("?")[0]).name
        if not archive.is_file():
            fetch(args.url, archive, args.sha256)
        safe_extract(archive, out / "annotations")
        annotation_file = find_annotations(out / "annotations")
        database = read_annotation_file(annotation_file)
        print(f"annotations: {annotation_file} ({len(database)} videos)")
        if args.skip_videos:
            return 0
        splits = ("training", "validation") if args.split == "all" else (args.split,)
        obtained, missing = download_videos(
            database, out / "videos", splits, args.limit, args.yt_dlp, args.timeout
        )
    except DataError as err:
        print(f"download_youcook2: error: {err}", file=sys.stderr)
        return 2
    write_missing(out / "missing_videos.tsv", missing)
    print(
        f"videos: {len(obtained)} obtained, {len(missing)} missing (listed in {out / 'missing_videos.tsv'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
