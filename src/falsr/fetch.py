"""Fetch the standard SR data sets and the FALSR release weights into the data folder.

    python -m falsr.fetch default             # T91, Set5, Set14, FALSR-A/B/C weights (what `make` fetches)
    python -m falsr.fetch DIV2K-train-HR      # for data=div2k; also B100, Urban100, Flickr2K, ...
    python -m falsr.fetch --list              # every name, its size, where it lands, where its checksum comes from
    python -m falsr.fetch Set5 --mirror /path/to/a/data/folder   (or http://host/data, for proxies and local copies)

Entries live in fetch_sources.json. Nothing reaches its destination before its checksum passed: files are
downloaded into <data>/.fetch/ (resumed there with HTTP Range after an interruption), a file that fails its
checksum is deleted, and archives are extracted into a hidden folder that is renamed into place once complete.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import socket
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from falsr import default_data_dir
from falsr.errors import UserError

SOURCES_FILE = Path(__file__).with_name("fetch_sources.json")
STAGING = ".fetch"  # inside the data folder, so finished files are renamed (not copied) into place
CHUNK = 1 << 20
TIMEOUT = 60  # seconds without a byte before the connection counts as dropped (then resumed)


class FetchError(UserError):
    """A download, checksum or extraction failed: exit status 1 (a usage mistake is 2)."""


class _Dropped(Exception):
    """The connection broke or stalled: worth resuming from the bytes we have."""


@dataclass(frozen=True)
class Source:
    """One fetchable data set: an archive (url) or a set of files (base_url + names), each with its checksum."""

    name: str
    description: str
    dest: str  # relative to the data folder, where the configs read it
    checksums: str  # where the checksums come from, said plainly
    url: str | None = None  # archive
    member: str | None = None  # the archive folder that becomes dest
    sha256: str | None = None
    md5: str | None = None  # only where no SHA-256 is known
    size: int | None = None
    base_url: str | None = None  # file set
    files: dict[str, str] = field(default_factory=dict)  # name -> SHA-256
    merge: bool = False  # dest is shared with other files (pretrained/): add ours beside them

    @property
    def is_archive(self) -> bool:
        return self.url is not None

    @property
    def archive_name(self) -> str:
        return Path(urllib.parse.urlparse(self.url).path).name


def load_sources(path: Path = SOURCES_FILE) -> tuple[dict[str, Source], dict[str, list[str]]]:
    doc = json.loads(Path(path).read_text())
    return {name: Source(name=name, **entry) for name, entry in doc["sources"].items()}, doc.get("groups", {})


def resolve_names(names: list[str], sources: dict[str, Source], groups: dict[str, list[str]]) -> list[Source]:
    """Names and group names, case-insensitive, in order, each once."""
    by_lower = {n.lower(): n for n in sources}
    group_lower = {g.lower(): members for g, members in groups.items()}
    chosen: list[str] = []
    for name in names:
        key = name.lower()
        expanded = group_lower.get(key) or ([by_lower[key]] if key in by_lower else None)
        if expanded is None:
            options = ", ".join([*sources, *groups])
            raise UserError(f"unknown data set {name!r}: choose from {options} (python -m falsr.fetch --list)")
        chosen += [n for n in expanded if n not in chosen]
    return [sources[n] for n in chosen]


def _as_url(location: str) -> str:
    """A URL as given, or a local folder/file as a file:// URL (a mirror may be a plain copy on disk)."""
    if "://" in location:
        return location.rstrip("/")
    return Path(location).expanduser().resolve().as_uri()


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(urllib.parse.quote(p.strip("/")) for p in parts)])


# ---------------------------------------------------------------------------------------------------- download


def download(
    url: str,
    target: Path,
    *,
    label: str,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    retries: int = 5,
    wait: float = 1.0,
    progress: bool | None = None,
) -> Path:
    """Download `url` to `target` through `target.part`, resuming it after a dropped connection; verify; rename.

    A partial download stays as .part for the next run to resume; one that is complete but wrong is deleted.
    """
    part = target.with_name(target.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    while True:
        try:
            _get(url, part, label, progress)
            break
        except _Dropped as exc:
            failures += 1
            if failures > retries:
                have = part.stat().st_size if part.exists() else 0
                raise FetchError(
                    f"download of {label} from {url} broke off after {have} bytes ({exc}); "
                    "run the same command again to resume it"
                ) from None
            time.sleep(wait * 2 ** (failures - 1))
    verify(part, label=label, url=url, sha256=sha256, md5=md5, size=size)
    os.replace(part, target)
    return target


def _get(url: str, part: Path, label: str, progress: bool | None) -> None:
    """One HTTP(S)/file request for the bytes `part` lacks; raises _Dropped where resuming may help."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "falsr-fetch"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            return  # nothing beyond what we have: it is the whole file (the checksum says whether it is right)
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Dropped(f"HTTP {exc.code}") from None
        raise FetchError(
            f"cannot download {label}: HTTP {exc.code} {exc.reason} from {url} (check --url / --mirror)"
        ) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout, ConnectionResetError)):
            raise _Dropped(str(reason)) from None
        hint = (
            "is the file in the mirror?"
            if url.startswith("file:")
            else "offline or behind a proxy? use --mirror or --url, README 'Data'"
        )
        raise FetchError(f"cannot download {label} from {url}: {reason} ({hint})") from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _Dropped(str(exc) or type(exc).__name__) from None
    with resp:
        status = getattr(resp, "status", None) or 200
        if have and status != 206:
            have = 0  # the server ignored Range (or a plain file://): start again from byte 0
        elif have and not resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            part.unlink()
            raise _Dropped(f"server resumed at the wrong offset ({resp.headers.get('Content-Range')})")
        length = resp.headers.get("Content-Length")
        remaining = int(length) if length is not None else None
        total = have + remaining if remaining is not None else None
        got = 0
        with (
            open(part, "ab" if have else "wb") as out,
            tqdm(
                total=total,
                initial=have,
                desc=label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                leave=False,
                disable=None if progress is None else not progress,
            ) as bar,
        ):
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                    raise _Dropped(str(exc) or type(exc).__name__) from None
                if not chunk:
                    break
                out.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
        if remaining is not None and got < remaining:
            raise _Dropped(f"connection closed after {have + got} of {total} bytes")


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, *, label: str, url: str, sha256: str | None, md5: str | None, size: int | None) -> None:
    """Raise FetchError (and delete the file, which is complete but wrong) unless size and checksum match."""
    algorithm, want = ("sha256", sha256) if sha256 else ("md5", md5) if md5 else (None, None)
    got_size = path.stat().st_size
    got = file_digest(path, algorithm) if algorithm else None
    if (size is None or got_size == size) and got == (want.lower() if want else None):
        return
    path.unlink()
    expected = ", ".join(
        x for x in (f"{size} bytes" if size is not None else "", f"{algorithm} {want}" if want else "") if x
    )
    found = f"{got_size} bytes" + (f", {algorithm} {got}" if algorithm else "")
    raise FetchError(
        f"checksum failed for {label} from {url}: expected {expected}, got {found} (truncated or "
        "corrupt); deleted it: run again, or check --url / --mirror"
    )


# ---------------------------------------------------------------------------------------------------- extract


def _in_member(name: str, member: str | None) -> bool:
    return member is None or name.rstrip("/") == member or name.startswith(member + "/")


def extract(archive: Path, into: Path, member: str | None) -> None:
    """Extract `member` (or everything) of a zip or tar archive into `into`; never outside it."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if _in_member(info.filename, member):
                    zf.extract(info, into)  # zipfile drops absolute and '..' path parts
        return
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError:
        raise tarfile.ReadError("neither a zip nor a tar archive") from None
    with tf:
        chosen = [m for m in tf.getmembers() if _in_member(m.name, member)]
        if hasattr(tarfile, "data_filter"):
            tf.extractall(into, members=chosen, filter="data")
        else:  # Python < 3.10.12: the same safety by hand
            for m in chosen:
                if m.issym() or m.islnk() or Path(m.name).is_absolute() or ".." in Path(m.name).parts:
                    raise tarfile.ReadError(f"unsafe member {m.name}")
            tf.extractall(into, members=chosen)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _check_space(folder: Path, needed: int, label: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise FetchError(
            f"not enough disk space for {label} in {folder}: about {needed / 1e9:.1f} GB needed, "
            f"{free / 1e9:.1f} GB free (free some, or fetch into another --dest)"
        )


# ---------------------------------------------------------------------------------------------------- fetch


def fetch(
    names: list[str],
    data_dir: str | Path | None = None,
    *,
    mirror: str | None = None,
    url: str | None = None,
    sha256: str | None = None,
    check: bool = True,
    force: bool = False,
    retries: int = 5,
    wait: float = 1.0,
    progress: bool | None = None,
    sources: dict[str, Source] | None = None,
    groups: dict[str, list[str]] | None = None,
    say: Callable[[str], None] = print,
) -> list[Path]:
    """Fetch the named sets into `data_dir` (default: FALSR_DATA_DIR, else data/ in the checkout); their paths."""
    if sources is None:
        sources, default_groups = load_sources()
        groups = default_groups if groups is None else groups
    chosen = resolve_names(names, sources, groups or {})
    if not chosen:
        raise UserError("name at least one data set to fetch (python -m falsr.fetch --list)")
    if (url or sha256) and (len(chosen) != 1 or not chosen[0].is_archive):
        raise UserError(
            "--url and --sha256 take exactly one archive name (DIV2K-train-HR, Flickr2K, ...); "
            "use --mirror for file sets"
        )
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    done = []
    try:
        common = dict(mirror=mirror, check=check, force=force, retries=retries, wait=wait, progress=progress, say=say)
        for source in chosen:
            if source.is_archive:
                done.append(_fetch_archive(source, root, url=url, sha256=sha256, **common))
            else:
                done.append(_fetch_files(source, root, **common))
    finally:
        _prune(root / STAGING)
    return done


def _prune(folder: Path) -> None:
    """Remove empty folders left in the staging area (a finished fetch leaves no trace there)."""
    if folder.is_dir():
        for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            if not any(sub.iterdir()):
                sub.rmdir()
        if not any(folder.iterdir()):
            folder.rmdir()


def _present(dest: Path) -> bool:
    return dest.is_dir() and any(dest.iterdir())


def _fetch_archive(
    source: Source, root: Path, *, mirror, url, sha256, check, force, retries, wait, progress, say
) -> Path:
    dest = root / source.dest
    if _present(dest) and not force:
        say(f"{source.name}: already in {dest} (not re-checked; --force fetches it again)")
        return dest
    want_sha = sha256 or source.sha256
    want_md5 = None if sha256 else source.md5
    if check and not (want_sha or want_md5):
        raise UserError(
            f"{source.name} has no known checksum ({source.checksums}): pass --sha256 HEX, or "
            "--no-checksum to take it unchecked"
        )
    if not check:
        say(f"warning: {source.name} is not checked against any checksum (--no-checksum)")
    elif not want_sha:
        say(f"note: {source.name} is checked by MD5 only: {source.checksums}")
    src = url or (_join(_as_url(mirror), source.archive_name) if mirror else source.url)
    stage = root / STAGING
    archive = stage / source.archive_name
    part = archive.with_name(archive.name + ".part")
    if source.size:
        have = part.stat().st_size if part.exists() else 0
        _check_space(stage, 2 * source.size - have, source.name)  # the archive, and what it extracts to
    digest = dict(sha256=want_sha, md5=want_md5, size=source.size) if check else dict(sha256=None, md5=None, size=None)
    if archive.exists():  # finished earlier, extraction interrupted: check it again before trusting it
        verify(archive, label=archive.name, url=src, **digest)
    else:
        download(src, archive, label=archive.name, retries=retries, wait=wait, progress=progress, **digest)
    tmp = dest.with_name(f".{dest.name}.partial")
    _remove(tmp)
    tmp.mkdir(parents=True)
    try:
        extract(archive, tmp, source.member)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        _remove(tmp)
        archive.unlink()
        raise FetchError(
            f"cannot extract {archive.name} from {src}: {exc} (damaged or truncated archive); "
            "deleted it: run again, or check --url / --mirror"
        ) from None
    got = tmp / source.member if source.member else tmp
    if not _present(got):
        _remove(tmp)
        raise FetchError(
            f"{archive.name} from {src} has no folder {source.member}/: not the expected archive "
            "(check --url / --mirror)"
        )
    old = dest.with_name(f".{dest.name}.old")
    if dest.exists():
        _remove(old)
        os.replace(dest, old)
    os.replace(got, dest)
    _remove(tmp)
    _remove(old)
    archive.unlink()
    say(f"{source.name}: {sum(1 for _ in dest.rglob('*') if _.is_file())} files in {dest}")
    return dest


def _fetch_files(source: Source, root: Path, *, mirror, check, force, retries, wait, progress, say) -> Path:
    dest = root / source.dest
    if source.merge:
        wanted = [n for n in source.files if force or not (dest / n).is_file()]
    else:
        wanted = [] if _present(dest) and not force else list(source.files)
    if not wanted:
        say(f"{source.name}: already in {dest} (not re-checked; --force fetches it again)")
        return dest
    if not check:
        say(f"warning: {source.name} is not checked against its checksums (--no-checksum)")
    base = _join(_as_url(mirror), source.dest) if mirror else source.base_url
    stage = root / STAGING / source.name
    if source.size:
        _check_space(stage, source.size, source.name)
    for name in tqdm(
        wanted, desc=source.name, unit="file", leave=False, disable=None if progress is None else not progress
    ):
        if (stage / name).is_file():
            continue  # verified by an earlier, interrupted run
        download(
            _join(base, name),
            stage / name,
            label=f"{source.name}/{name}",
            sha256=source.files[name] if check else None,
            retries=retries,
            wait=wait,
            progress=False,
        )
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage, dest)  # one rename: the whole set appears at once
    else:
        if force and not source.merge:
            old = dest.with_name(f".{dest.name}.old")
            _remove(old)
            os.replace(dest, old)
            os.replace(stage, dest)
            _remove(old)
        else:
            for name in wanted:
                os.replace(stage / name, dest / name)
            _remove(stage)
    say(f"{source.name}: {len(wanted)} files in {dest}")
    return dest


# ---------------------------------------------------------------------------------------------------- CLI


def _list(sources: dict[str, Source], groups: dict[str, list[str]]) -> None:
    for s in sources.values():
        size = f"{s.size / 1e6:,.0f} MB" if s.size else "size unknown"
        kind = s.archive_name if s.is_archive else f"{len(s.files)} files"
        print(f"{s.name:15} {size:>9}  {kind:20} -> <data>/{s.dest:22} {s.description}")
        print(f"{'':15} checksums: {s.checksums}")
    for g, members in groups.items():
        print(f"group {g}: {' '.join(members)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="falsr-fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="data sets or groups (--list shows them)")
    parser.add_argument("--list", action="store_true", help="show every name, its size and where it lands")
    parser.add_argument("--dest", help="data folder (default: FALSR_DATA_DIR, else data/ in the checkout)")
    parser.add_argument(
        "--mirror",
        help="a folder or URL laid out like the data folder (file sets) or holding "
        "the archives: fetch from it instead of the upstream URLs",
    )
    parser.add_argument("--url", help="the archive's URL (one archive name), e.g. through a proxy")
    parser.add_argument("--sha256", help="the archive's SHA-256 (one archive name), where none is known or to override")
    parser.add_argument("--no-checksum", dest="check", action="store_false", help="take files unchecked (warns)")
    parser.add_argument("--force", action="store_true", help="fetch again even where the destination exists")
    parser.add_argument("--retries", type=int, default=5, help="resumes after a dropped connection (default 5)")
    args = parser.parse_args(argv)
    try:
        sources, groups = load_sources()
        if args.list:
            _list(sources, groups)
            return 0
        if not args.names:
            raise UserError("name at least one data set to fetch, e.g. `python -m falsr.fetch default` (--list)")
        fetch(
            args.names,
            args.dest,
            mirror=args.mirror,
            url=args.url,
            sha256=args.sha256,
            check=args.check,
            force=args.force,
            retries=args.retries,
            sources=sources,
            groups=groups,
        )
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
