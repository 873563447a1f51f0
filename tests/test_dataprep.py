"""``bench data prepare/check`` and ``preflight``: loopback downloads only (127.0.0.1), never the internet."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from coop_fixture import make_coop_data
from typer.testing import CliRunner

from bench.cli.data import data_app
from bench.data import arrange, check, tables
from bench.data import fetch as net
from bench.errors import DataError


class RangeHandler(SimpleHTTPRequestHandler):
    """A static file server that honours ``Range: bytes=N-`` (the resume path) and stays quiet."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        m = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not m or not path.is_file():
            return super().do_GET()
        data = path.read_bytes()[int(m.group(1)) :]
        self.send_response(206)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    served = tmp_path / "served"
    served.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone.json"


def run(*args: str):
    return CliRunner().invoke(data_app, list(args), env={"COLUMNS": "240"})


# ---------------------------------------------------------------------------------------------------------------------
# downloads


def test_fetch_resumes_and_verifies_md5(server: tuple[str, Path], tmp_path: Path) -> None:
    url, served = server
    payload = bytes(range(256)) * 4000
    (served / "a.bin").write_bytes(payload)
    md5 = hashlib.md5(payload).hexdigest()
    dest = tmp_path / "out" / "a.bin"
    dest.parent.mkdir()
    (dest.parent / "a.bin.part").write_bytes(payload[:1000])  # an interrupted earlier download
    assert net.fetch(f"{url}/a.bin", dest, md5) == dest
    assert dest.read_bytes() == payload and not (dest.parent / "a.bin.part").exists()
    with pytest.raises(DataError, match="checksum"):
        net.fetch(f"{url}/a.bin", tmp_path / "b.bin", "0" * 32)
    sha = hashlib.sha256(payload).hexdigest()  # sha256 checksums are verified too
    assert net.fetch(f"{url}/a.bin", tmp_path / "e.bin", sha).read_bytes() == payload
    with pytest.raises(DataError, match="checksum"):
        net.fetch(f"{url}/a.bin", tmp_path / "f.bin", "0" * 64)
    with pytest.raises(DataError, match="HTTP 404"):
        net.fetch(f"{url}/missing.bin", tmp_path / "c.bin")
    with pytest.raises(DataError, match="download of"):
        net.fetch(closed_port_url(), tmp_path / "d.bin")


def test_fetch_split_validates_and_falls_back(server: tuple[str, Path], tmp_path: Path, monkeypatch) -> None:
    url, served = server
    (served / "bad.json").write_text("<html>quota exceeded</html>")
    good = {"train": [["a/1.jpg", 0, "a"]], "val": [["a/2.jpg", 0, "a"]], "test": [["a/3.jpg", 0, "a"]]}
    (served / "good.json").write_text(json.dumps(good))
    urls = [closed_port_url(), f"{url}/bad.json", f"{url}/good.json"]
    monkeypatch.setitem(tables.SPLIT_URLS, "dtd", urls)
    dest = tmp_path / "split.json"
    assert net.fetch_split("dtd", dest)
    assert json.loads(dest.read_text()) == good
    monkeypatch.setitem(tables.SPLIT_URLS, "dtd", [f"{url}/bad.json"])
    assert not net.fetch_split("dtd", tmp_path / "other.json")
    assert not (tmp_path / "other.json").exists()


def _fake_torchvision_dtd(src: Path, classes: int = 3, per_class: int = 10) -> None:
    """What torchvision's DTD leaves after extraction: .sources/dtd/dtd/dtd/images/<class>/*.jpg."""
    fixture = make_coop_data(src / "_tmp", ["dtd"], n_classes=classes, train_per_class=per_class - 5,
                             val_per_class=2, test_per_class=3)  # fmt: skip
    (src / "dtd" / "dtd").mkdir(parents=True)
    shutil.move(str(fixture / "dtd" / "images"), src / "dtd" / "dtd" / "images")
    shutil.rmtree(src / "_tmp")


def test_prepare_dtd_downloads_arranges_and_fetches_split(server, tmp_path: Path, monkeypatch) -> None:
    url, served = server
    root = tmp_path / "DATA"
    archive = b"pretend this is dtd-r1.0.1.tar.gz"
    (served / "dtd.tar.gz").write_bytes(archive)
    res = tables.Resource(f"{url}/dtd.tar.gz", "dtd/dtd-r1.0.1.tar.gz", hashlib.md5(archive).hexdigest())
    monkeypatch.setitem(tables.ARCHIVES, "dtd", [res])
    built: list[Path] = []

    def fake_build(name: str, src: Path) -> None:
        assert (src / "dtd" / "dtd-r1.0.1.tar.gz").read_bytes() == archive  # fetched where torchvision looks
        _fake_torchvision_dtd(src)
        built.append(src)

    monkeypatch.setattr(net, "torchvision_build", fake_build)
    # the published split: serve one consistent with the extracted images
    _fake_torchvision_dtd(tmp_path / "ref")
    images = tmp_path / "ref" / "dtd" / "dtd" / "images"
    rows = [
        [f"{c.name}/{f.name}", i, c.name] for i, c in enumerate(sorted(images.iterdir())) for f in sorted(c.iterdir())
    ]
    split = {"train": rows[::2], "val": rows[1::4], "test": rows[3::4]}
    (served / "split.json").write_text(json.dumps(split))
    monkeypatch.setitem(tables.SPLIT_URLS, "dtd", [f"{url}/split.json"])

    assert arrange.prepare("dtd", root)
    assert (root / "dtd" / "images").is_symlink()
    assert json.loads((root / "dtd" / "split_zhou_DescribableTextures.json").read_text()) == split
    assert check.check(["dtd"], root)[0].usable
    assert arrange.prepare("dtd", root) and len(built) == 1  # idempotent: nothing fetched or extracted again


def test_prepare_generates_split_with_loud_warning_when_unreachable(tmp_path: Path, monkeypatch, capsys) -> None:
    root = tmp_path / "DATA"
    monkeypatch.setitem(tables.ARCHIVES, "dtd", [])
    monkeypatch.setattr(net, "torchvision_build", lambda name, src: _fake_torchvision_dtd(src))
    monkeypatch.setitem(tables.SPLIT_URLS, "dtd", [closed_port_url()])
    r = run("prepare", "dtd", "--data-root", str(root))
    assert r.exit_code == 0, r.output
    assert (root / "dtd" / "split_zhou_DescribableTextures.json").exists()
    assert "NOT comparable" in r.output + capsys.readouterr().err


def test_prepare_manual_steps_and_variant_classnames(tmp_path: Path) -> None:
    r = run("prepare", "ucf101", "--data-root", str(tmp_path))
    assert r.exit_code == 1 and "UCF-101-midframes" in r.output
    r = run("prepare", "stanford_cars", "--data-root", str(tmp_path))
    assert r.exit_code == 1 and "Kaggle" in r.output
    root = make_coop_data(tmp_path / "d", ["imagenet", "imagenet_a"])
    (root / "imagenet-adversarial" / "classnames.txt").unlink()
    assert arrange.prepare("imagenet_a", root)
    assert (root / "imagenet-adversarial" / "classnames.txt").read_text() == (
        root / "imagenet/classnames.txt"
    ).read_text()
    r = run("prepare", "nosuchset", "--data-root", str(root))
    assert r.exit_code == 2 and "unknown dataset 'nosuchset'" in r.output


# ---------------------------------------------------------------------------------------------------------------------
# check and preflight


def test_check_reports_truncated_missing_folder_and_wrong_count(tmp_path: Path, monkeypatch) -> None:
    root = make_coop_data(tmp_path, ["dtd", "eurosat", "caltech101", "food101"])
    bad = sorted((root / "dtd" / "images" / "banded").iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:120])  # truncated JPEG
    shutil.rmtree(root / "eurosat" / "2750" / "Forest")  # a class folder the split names
    (root / "food-101" / "images" / "apple_pie" / "100000.jpg").unlink()  # one image missing
    monkeypatch.setitem(tables.PUBLISHED_COUNTS, "caltech101", (36, 12, 25))  # wrong test count
    monkeypatch.setitem(tables.PUBLISHED_COUNTS, "dtd", (36, 12, None))

    rows = {r.dataset: r for r in check.check(["dtd", "eurosat", "caltech101", "food101"], root)}
    assert rows["dtd"].unreadable == [str(bad)] and rows["dtd"].status == "unusable"
    assert rows["dtd"].count_matches(0) is True and rows["dtd"].count_matches(2) is None  # unknown, not invented
    assert rows["eurosat"].found and "Forest" in rows["eurosat"].errors[0] and not rows["eurosat"].usable
    assert rows["caltech101"].usable and rows["caltech101"].status == "differs"
    assert rows["caltech101"].count_matches(2) is False and rows["caltech101"].counts == (36, 12, 24)
    assert rows["food101"].missing and rows["food101"].status == "unusable"

    r = run("check", "dtd", "eurosat", "caltech101", "food101", "--data-root", str(root))
    assert r.exit_code == 1
    assert re.search(r"caltech101.*differs", r.output) and "unusable" in r.output and "24 ≠ 25" in r.output
    assert run("check", "caltech101", "--data-root", str(root)).exit_code == 0
    assert run("check", "sun397", "--data-root", str(root)).exit_code == 1  # requested but absent
    assert run("check", "--data-root", str(root / "nope")).exit_code == 2


def test_check_without_split_file_builds_in_memory_only(tmp_path: Path) -> None:
    root = make_coop_data(tmp_path, ["dtd"])
    (root / "dtd" / "split_zhou_DescribableTextures.json").unlink()
    row = check.check(["dtd"], root, decode=False)[0]
    assert row.usable and row.status == "differs" and "missing" in row.warnings[0]
    assert not (root / "dtd" / "split_zhou_DescribableTextures.json").exists()


def test_preflight(tmp_path: Path) -> None:
    root = make_coop_data(tmp_path, ["dtd", "imagenet", "imagenet_r"])
    check.preflight(["dtd", "imagenet", "imagenet_r"], root)
    with pytest.raises(DataError, match="bench data prepare eurosat"):
        check.preflight(["eurosat"], root)
    with pytest.raises(DataError, match="data root"):
        check.preflight(["dtd"], tmp_path / "nope")
    victim = sorted((root / "dtd" / "images" / "bumpy").iterdir())[0]
    victim.unlink()
    with pytest.raises(DataError, match=re.escape(str(victim))):
        check.preflight(["dtd"], root)


def test_archive_members_that_escape_their_folder_are_refused(tmp_path: Path) -> None:
    import io
    import tarfile

    from torchvision.datasets.utils import extract_archive

    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("good/a.txt", "../escaped.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    target = tmp_path / "out"
    before = tarfile.TarFile.extraction_filter
    with net.safe_tar_extraction(), pytest.raises(tarfile.FilterError):
        extract_archive(str(archive), str(target))
    assert not (tmp_path / "escaped.txt").exists()
    assert tarfile.TarFile.extraction_filter == before  # restored for the rest of the process


def test_every_download_is_https_and_checksummed() -> None:
    resources = [r for rs in tables.ARCHIVES.values() for r in rs]
    assert len(resources) == 11
    for r in resources:
        assert r.url.startswith("https://"), r.url
        assert r.checksum is not None and re.fullmatch(r"[0-9a-f]{32}", r.checksum), r.url  # torchvision's md5s
    part = tables.SUN397_PARTITIONS
    assert part.url.startswith("https://") and re.fullmatch(r"[0-9a-f]{64}", part.checksum or "")
