"""The data fetcher against a real HTTP server on 127.0.0.1: resume, checksums, truncation, dropped connections.

Fixture archives and files are made here; no test touches the internet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import threading
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from falsr.errors import UserError
from falsr.fetch import STAGING, FetchError, Source, fetch, load_sources

REPO = Path(__file__).resolve().parents[1]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Served:
    """What the loopback server serves (path -> bytes) and what it saw."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drops: dict[str, list[int]] = {}  # path -> byte counts after which the next responses break off
        self.honour_range = True
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.sent: list[int] = []  # body bytes sent per request


@pytest.fixture
def server():
    served = Served()

    class Handler(BaseHTTPRequestHandler):  # HTTP/1.0: one response per connection, closed after it
        def do_GET(self):
            path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
            rng = self.headers.get("Range")
            served.requests.append((path, rng))
            body = served.files.get(path)
            if body is None:
                served.sent.append(0)
                self.send_error(404)
                return
            start = int(rng.split("=")[1].split("-")[0]) if rng and served.honour_range else 0
            if start >= len(body) > 0:
                served.sent.append(0)
                self.send_error(416)
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            cut = served.drops[path].pop(0) if served.drops.get(path) else None
            chunk = body[start:] if cut is None else body[start : start + cut]
            self.wfile.write(chunk)  # then the connection closes, short of Content-Length where cut
            served.sent.append(len(chunk))

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield served
    httpd.shutdown()
    httpd.server_close()


def images(n: int, seed: int = 0) -> dict[str, bytes]:
    """Incompressible stand-ins for image files (the fetcher never decodes them), ~60 kB each."""
    rng = np.random.default_rng(seed)
    return {f"img_{i:03d}.png": rng.integers(0, 256, 60_000, dtype=np.uint8).tobytes() for i in range(n)}


def make_archive(kind: str, top: str, files: dict[str, bytes], extra: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in {**{f"{top}/{k}": v for k, v in files.items()}, **extra}.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for name, data in {**{f"{top}/{k}": v for k, v in files.items()}, **extra}.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ARCHIVES = {  # kind -> (archive name, member kept, what else the archive holds)
    "zip": ("Toy_HR.zip", "Toy_HR", {"Toy_LR/x.png": b"lr"}),
    "tar.gz": ("Pack.tar.gz", "Pack/Pack_HR", {"Pack/Pack_LR/x.png": b"lr"}),  # nested, as Flickr2K
}


@pytest.fixture(params=sorted(ARCHIVES))
def archive(request, server):
    """An archive served at /files/<name>, and the Source that describes it."""
    name, member, extra = ARCHIVES[request.param]
    content = images(3)
    body = make_archive(request.param, member, content, extra)
    server.files[f"/files/{name}"] = body
    source = Source(
        name="Toy",
        description="toy archive",
        dest="toy/" + member.split("/")[-1],
        checksums="made here",
        url=f"{server.url}/files/{name}",
        member=member,
        sha256=sha256(body),
        size=len(body),
    )
    return source, body, content


def run(source: Source, data: Path, **kw):
    kw.setdefault("wait", 0)
    return fetch([source.name], data, sources={source.name: source}, say=lambda _: None, **kw)


def leftovers(data: Path) -> list[str]:
    """Everything in the data folder besides finished destinations: staging, hidden temporary folders."""
    return sorted(
        str(p.relative_to(data))
        for p in data.rglob("*")
        if any(part.startswith(".") for part in p.relative_to(data).parts)
    )


def test_archive_lands_at_dest_atomically_with_a_progress_bar(archive, server, tmp_path, capsys):
    source, body, content = archive
    [dest] = run(source, tmp_path, progress=True)
    assert dest == tmp_path / source.dest
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == content  # the member only, not the LR folder
    assert leftovers(tmp_path) == []
    assert source.url.rsplit("/", 1)[1] in capsys.readouterr().err  # tqdm's bar names the archive
    run(source, tmp_path)  # present: no second request
    assert len(server.requests) == 1


def test_dropped_connection_is_resumed_with_range(archive, server, tmp_path):
    source, body, content = archive
    path = urllib.parse.urlparse(source.url).path
    server.drops[path] = [len(body) // 3]
    [dest] = run(source, tmp_path, retries=2)
    assert server.requests == [(path, None), (path, f"bytes={len(body) // 3}-")]
    assert server.sent == [len(body) // 3, len(body) - len(body) // 3]  # the second request only sent the rest
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == content


def test_interrupted_run_is_resumed_by_the_next_run(archive, server, tmp_path):
    source, body, content = archive
    path = urllib.parse.urlparse(source.url).path
    cut = len(body) // 2
    server.drops[path] = [cut]
    with pytest.raises(FetchError, match=rf"broke off after {cut} bytes .*run the same command again to resume"):
        run(source, tmp_path, retries=0)
    part = tmp_path / STAGING / (Path(path).name + ".part")
    assert part.stat().st_size == cut and not (tmp_path / source.dest).exists()
    [dest] = run(source, tmp_path)
    assert server.requests[-1] == (path, f"bytes={cut}-") and server.sent[-1] == len(body) - cut
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == content
    assert leftovers(tmp_path) == []


def test_server_ignoring_range_restarts_from_zero(archive, server, tmp_path):
    source, body, content = archive
    path = urllib.parse.urlparse(source.url).path
    server.honour_range = False
    server.drops[path] = [len(body) // 4]
    [dest] = run(source, tmp_path, retries=1)
    assert server.sent == [len(body) // 4, len(body)]
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == content


def test_corrupted_archive_names_the_file_and_checksum_and_leaves_nothing(archive, server, tmp_path):
    source, body, _ = archive
    path = urllib.parse.urlparse(source.url).path
    bad = bytearray(body)
    bad[len(bad) // 2] ^= 0xFF
    server.files[path] = bytes(bad)
    with pytest.raises(FetchError) as err:
        run(source, tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and f"checksum failed for {Path(path).name}" in msg
    assert f"sha256 {source.sha256}" in msg and f"sha256 {sha256(bytes(bad))}" in msg
    assert not (tmp_path / source.dest).exists() and leftovers(tmp_path) == []


def test_truncated_archive_fails_its_checksum(archive, server, tmp_path):
    source, body, _ = archive
    path = urllib.parse.urlparse(source.url).path
    server.files[path] = body[: len(body) // 2]  # a complete response of a truncated file
    with pytest.raises(
        FetchError,
        match=rf"checksum failed for {Path(path).name} .*expected {len(body)} bytes, "
        rf"sha256 {source.sha256}, got {len(body) // 2} bytes",
    ):
        run(source, tmp_path)
    assert not (tmp_path / source.dest).exists() and leftovers(tmp_path) == []


def test_truncated_archive_without_checksum_fails_extraction_atomically(archive, server, tmp_path):
    source, body, _ = archive
    path = urllib.parse.urlparse(source.url).path
    server.files[path] = body[: len(body) // 2]
    with pytest.raises(FetchError, match=rf"cannot extract {Path(path).name} .*damaged or truncated"):
        run(source, tmp_path, check=False)
    assert not (tmp_path / source.dest).exists() and leftovers(tmp_path) == []


def test_file_set_is_all_or_nothing_and_resumes_per_file(server, tmp_path):
    content = images(4, seed=1)
    for name, data in content.items():
        server.files[f"/up/{name}"] = data
    source = Source(
        name="Tiny",
        description="toy set",
        dest="benchmarks/Tiny",
        checksums="made here",
        base_url=f"{server.url}/up/",
        files={n: sha256(d) for n, d in content.items()},
    )
    server.files["/up/img_002.png"] = b"corrupt" + content["img_002.png"][7:]
    with pytest.raises(FetchError, match="checksum failed for Tiny/img_002.png .*" + source.files["img_002.png"]):
        run(source, tmp_path)
    assert not (tmp_path / source.dest).exists()  # the three good files wait in staging, not in the destination
    server.files["/up/img_002.png"] = content["img_002.png"]
    server.requests.clear()
    [dest] = run(source, tmp_path)
    assert [p for p, _ in server.requests] == ["/up/img_002.png", "/up/img_003.png"]  # the rest were done
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == content
    assert leftovers(tmp_path) == []


def test_mirror_folder_and_url_override(archive, server, tmp_path):
    """--mirror takes a plain folder laid out like the data folder; --url takes an archive from elsewhere."""
    content = images(2, seed=2)
    mirror = tmp_path / "mirror"
    (mirror / "benchmarks" / "Tiny").mkdir(parents=True)
    for name, data in content.items():
        (mirror / "benchmarks" / "Tiny" / name).write_bytes(data)
    files = Source(
        name="Tiny",
        description="toy set",
        dest="benchmarks/Tiny",
        checksums="made here",
        base_url="https://upstream.invalid/",
        files={n: sha256(d) for n, d in content.items()},
    )
    [dest] = run(files, tmp_path / "data", mirror=str(mirror))
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == content

    source, body, archived = archive
    server.files["/proxy/copy"] = body
    upstream_gone = dataclasses.replace(source, url="https://upstream.invalid/" + Path(source.url).name)
    [dest] = run(upstream_gone, tmp_path / "data", url=f"{server.url}/proxy/copy")
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == archived


def test_refusals_happen_before_any_download(archive, server, tmp_path):
    source, _, _ = archive
    unchecked = dataclasses.replace(source, sha256=None)
    with pytest.raises(UserError, match="has no known checksum .*--sha256"):
        run(unchecked, tmp_path)
    huge = dataclasses.replace(source, size=10**15)
    with pytest.raises(FetchError, match="not enough disk space for Toy"):
        run(huge, tmp_path)
    assert server.requests == []


def test_cli_errors_are_one_line_with_a_truthful_status(server, tmp_path):
    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "falsr.fetch", *args], capture_output=True, text=True, cwd=tmp_path, timeout=120
        )

    missing = cli("Set5", "--dest", str(tmp_path / "d"), "--mirror", server.url, "--retries", "0")
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [missing.stderr.strip()]
    assert missing.stderr.startswith("error: cannot download Set5/img_001_SRF_2_HR.png: HTTP 404")
    unknown = cli("Set6")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: unknown data set 'Set6'")
    assert len(unknown.stderr.splitlines()) == 1
    listing = cli("--list")
    assert listing.returncode == 0 and "DIV2K-train-HR" in listing.stdout and "NO SHA-256 known" in listing.stdout


def test_release_entries_match_the_copies_we_test_with(data_dir, pretrained_dir, server, tmp_path):
    """The packaged Set5/Set14/weights checksums hold for the release files, served over HTTP as a mirror."""
    for folder, names in (
        (data_dir, ("benchmarks/Set5", "benchmarks/Set14")),
        (pretrained_dir.parent, ("pretrained",)),
    ):
        for name in names:
            for path in (folder / name).iterdir():
                server.files[f"/mirror/{name}/{path.name}"] = path.read_bytes()
    got = fetch(["Set5", "Set14", "FALSR-weights"], tmp_path, mirror=f"{server.url}/mirror", wait=0, say=lambda _: None)
    assert [sorted(p.name for p in d.iterdir()) for d in got] == [
        sorted(p.name for p in (data_dir / "benchmarks" / "Set5").iterdir()),
        sorted(p.name for p in (data_dir / "benchmarks" / "Set14").iterdir()),
        ["FALSR-A.pb", "FALSR-B.pb", "FALSR-C.pb"],
    ]


def test_entries_land_where_the_configs_read(tmp_path):
    sources, groups = load_sources()
    data = tmp_path / "d"
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        t91 = compose("train", overrides=[f"paths.data_dir={data}"])
        div2k = compose("train", overrides=[f"paths.data_dir={data}", "data=div2k"])
    assert t91.data.train_dir == str(data / sources["T91"].dest)
    assert div2k.data.train_dir == str(data / sources["DIV2K-train-HR"].dest)
    for name in groups["benchmarks"]:
        assert data / sources[name].dest == Path(t91.data.benchmarks_dir) / name
    for source in sources.values():  # each has a checksum, or says plainly that it has none
        assert all(len(h) == 64 for h in source.files.values())
        assert source.files or source.sha256 or "NO SHA-256" in source.checksums
    groups = json.loads((REPO / "src/falsr/fetch_sources.json").read_text())["groups"]
    assert groups["default"] == ["T91", "Set5", "Set14"] and groups["weights"] == ["FALSR-weights"]


def test_embedded_default_data_is_in_the_checkout():
    """A fresh clone trains and evaluates on the shipped sets: nothing to fetch for the default group."""
    data = REPO / "data"
    assert len(list((data / "train" / "T91").iterdir())) == 53
    for name, pairs in (("Set5", 5), ("Set14", 14)):
        assert len(list((data / "benchmarks" / name).glob("*_HR.png"))) == pairs
    got = fetch(["default"], data, wait=0, say=lambda _: None)  # present: no network touched
    assert [p.name for p in got] == ["T91", "Set5", "Set14"]


def test_default_data_dir_is_the_checkout_whatever_the_cwd(monkeypatch, tmp_path):
    monkeypatch.delenv("FALSR_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        assert compose("train").paths.data_dir == str(REPO / "data")
        monkeypatch.setenv("FALSR_DATA_DIR", str(tmp_path))
        assert compose("train").data.train_dir == str(tmp_path / "train" / "T91")
