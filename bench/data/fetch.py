"""Downloads: resumable HTTP with checksums and a progress bar, CoOp split files, torchvision's own extraction.

Network access is confined to :func:`fetch` (and :func:`torchvision_build`), so tests replace them or point the URL
tables at a loopback server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from bench.data.tables import SPLIT_URLS, TORCHVISION
from bench.errors import DataError

console = Console(stderr=True)


def file_checksum(path: Path, expected: str) -> str:
    """The file's hex digest in the algorithm ``expected`` is written in: md5 (32 hex digits) or sha256 (64)."""
    algo = {32: "md5", 64: "sha256"}.get(len(expected))
    if algo is None:
        raise ValueError(f"checksum {expected!r} is neither md5 nor sha256")
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, algo).hexdigest()


def fetch(url: str, dest: Path, checksum: str | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming a ``dest.part`` left by an interrupted run; verify ``checksum``.

    A complete ``dest`` with the right checksum is kept as is. Servers that ignore ``Range`` restart the file.
    """
    dest = Path(dest)
    if dest.exists() and (checksum is None or file_checksum(dest, checksum) == checksum):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    pos = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "adaptbench"}
    if pos:
        headers["Range"] = f"bytes={pos}-"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            if pos and resp.status != 206:
                pos = 0  # no resume support: start over
            length = resp.headers.get("Content-Length")
            total = int(length) + pos if length else None
            with (
                part.open("ab" if pos else "wb") as fh,
                Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TimeRemainingColumn(),
                    console=console,
                    transient=True,
                ) as bar,
            ):
                task = bar.add_task(dest.name, total=total, completed=pos)
                while block := resp.read(1 << 20):
                    fh.write(block)
                    bar.advance(task, len(block))
    except urllib.error.HTTPError as e:
        if e.code != 416 or not pos:  # 416: the .part file is already complete
            raise DataError(
                f"download of {url} failed (HTTP {e.code}); retry, or fetch it by hand into {dest}"
            ) from None
    except (urllib.error.URLError, OSError) as e:
        raise DataError(f"download of {url} failed ({e}); rerun to resume, or fetch it by hand into {dest}") from None
    if checksum is not None and file_checksum(part, checksum) != checksum:
        part.unlink()
        raise DataError(f"{url}: checksum mismatch for {dest.name} (expected {checksum}); the partial file was deleted")
    os.replace(part, dest)
    return dest


def fetch_first(urls: Sequence[str], dest: Path, validate: Callable[[Path], None] | None = None) -> bool:
    """Try each URL in turn; keep the first download that ``validate`` accepts. Returns whether one succeeded."""
    for url in urls:
        tmp = dest.with_name(dest.name + ".download")
        try:
            fetch(url, tmp)
            if validate is not None:
                validate(tmp)
        except (DataError, ValueError, KeyError, TypeError) as e:
            console.print(f"[yellow]could not use {url}: {e}[/]")
            tmp.unlink(missing_ok=True)
            continue
        os.replace(tmp, dest)
        return True
    return False


def _valid_split(path: Path) -> None:
    raw = json.loads(Path(path).read_text())
    for key in ("train", "val", "test"):
        if not raw[key] or len(raw[key][0]) != 3:
            raise ValueError(f"not a CoOp split file (no {key!r} rows)")


def fetch_split(name: str, dest: Path) -> bool:
    """Fetch CoOp's published split file of ``name`` to ``dest``; False if no source was reachable."""
    return fetch_first(SPLIT_URLS.get(name, []), dest, _valid_split)


@contextlib.contextmanager
def safe_tar_extraction() -> Iterator[None]:
    """Every ``tarfile`` extraction inside uses the ``data`` filter: absolute paths, ``..``, device files and links
    out of the target are refused (torchvision calls ``extractall`` without a filter)."""
    previous = tarfile.TarFile.extraction_filter
    tarfile.TarFile.extraction_filter = staticmethod(tarfile.data_filter)
    try:
        yield
    finally:
        tarfile.TarFile.extraction_filter = previous


def torchvision_build(name: str, src: Path) -> None:
    """Let torchvision's dataset class verify and extract the archives in ``src`` (downloading any still missing)."""
    import torchvision.datasets as tvd

    cls_name, kwargs = TORCHVISION[name]
    try:
        with safe_tar_extraction():
            getattr(tvd, cls_name)(root=str(src), download=True, **kwargs)
    except tarfile.FilterError as e:
        raise DataError(f"{name}: an archive under {src} tries to write outside its folder ({e}); it was not "
                        "extracted — delete it and download it again from the official source") from None  # fmt: skip
    except Exception as e:  # torchvision raises RuntimeError/URLError/... with its own message
        raise DataError(f"torchvision {cls_name} could not prepare {src} ({e}); rerun to resume") from None
