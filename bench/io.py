"""Atomic writes, file locks and stable hashes: workers share the results folder and caches, so nothing is half written."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, flush it to disk, then rename it into place.

    The file gets the mode a plain ``open()`` would give it under the process umask (0644 under 022, 0664 under 002),
    not ``mkstemp``'s private 0600, so a lab's shared results folder and other users' Slurm jobs can read it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        with open(tmp, "rb+") as fh:  # on disk before it counts: a power cut never leaves a record that looks done
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (``os.umask`` sets it: racy with threads)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Every temp name carries its writer (host and pid), so a cleanup can tell a killed writer's file from a live one.
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"
_TEMP_NAME = re.compile(r"\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")


def temp_writer_is_dead(tmp: Path) -> bool:
    """True when ``tmp`` was left by a process of this machine that no longer runs (killed mid-write).

    Files from other machines (Slurm nodes) or without a writer tag are never judged dead here: callers fall back to age.
    """
    m = _TEMP_NAME.search(tmp.name)
    return m is not None and m["host"] == _HOST and pid_is_dead(int(m["pid"]))


def pid_is_dead(pid: int) -> bool:
    """True when no process ``pid`` runs on this machine; False when it runs or cannot be checked (not POSIX)."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, owned by someone else
        return False
    return False


def _fsync_dir(folder: Path) -> None:
    """Persist a rename (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n")


def lock(path: str | Path, timeout: float = -1) -> FileLock:
    """An inter-process lock guarding ``path`` (a ``.lock`` file beside it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock", timeout=timeout)


def digest(obj: object) -> str:
    """A short stable hash of a JSON-serialisable object (config hashes, split hashes, cache keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def set_aside(path: Path, suffix: str = ".unreadable") -> Path:
    """Rename a damaged file to ``<name><suffix>`` (kept for inspection, out of the way of a rebuild)."""
    aside = path.with_name(path.name + suffix)
    with contextlib.suppress(FileNotFoundError):  # another process may have set it aside already
        path.replace(aside)
    return aside
