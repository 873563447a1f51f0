"""``bench data check`` and the preflight of ``bench run``: per dataset, found or not, images per split against CoOp's
published counts, missing or unreadable images, class-folder mismatches."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from bench.data.arrange import reader_for
from bench.data.dataset import DatasetSplits
from bench.data.root import checked_root
from bench.data.tables import BENCHMARK, PUBLISHED_COUNTS
from bench.errors import BenchError, DataError
from bench.progress import phase


@dataclass
class CheckRow:
    """One dataset's line of ``bench data check``."""

    dataset: str
    found: bool = False
    counts: tuple[int, int, int] | None = None
    expected: tuple[int | None, int | None, int | None] = (None, None, None)
    classes: int = 0
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """A run can use it: found, readable splits, every image present and decodable."""
        return self.found and not self.errors and not self.missing and not self.unreadable

    @property
    def status(self) -> str:
        if not self.found:
            return "missing"
        if not self.usable:
            return "unusable"
        differs = self.warnings or any(self.count_matches(i) is False for i in range(3))
        return "differs" if differs else "ok"

    def count_matches(self, i: int) -> bool | None:
        """Whether split ``i`` matches the published count; None when unknown."""
        if self.counts is None or self.expected[i] is None:
            return None
        return self.counts[i] == self.expected[i]


def image_ok(path: str) -> bool | None:
    """True if the image decodes fully, None if it is missing, False if unreadable (truncated, not an image)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, still reads every byte
            img.load()
        return True
    except FileNotFoundError:
        return None
    except Exception:
        return False


def _scan_images(paths: list[str], decode: bool, label: str) -> tuple[list[str], list[str]]:
    """(missing, unreadable) among ``paths``; decoding runs on a thread pool behind a progress bar."""
    if not decode:
        return [p for p in paths if not os.path.exists(p)], []
    missing, bad = [], []
    with (
        ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool,
        phase(f"{label}: decoding {len(paths)} images", len(paths)) as done,
    ):
        for p, ok in zip(paths, pool.map(image_ok, paths, chunksize=64), strict=True):
            if ok is None:
                missing.append(p)
            elif not ok:
                bad.append(p)
            done(1)
    return missing, bad


def check_one(name: str, root: Path, decode: bool = True) -> CheckRow:
    """Check one dataset without modifying anything (a missing split file is built in memory only)."""
    row = CheckRow(name, expected=PUBLISHED_COUNTS.get(name, (None, None, None)))
    try:
        reader = reader_for(name, root)
        reader.check_root()
    except BenchError as e:
        row.errors.append(str(e))
        return row
    row.found = True
    splits: DatasetSplits | None = None
    try:
        if reader.split_file is not None and not (reader.dataset_path / reader.split_file).exists():
            if not reader.image_path.is_dir():
                raise DataError(f"{name}: image folder {reader.image_path} not found")
            row.warnings.append(f"{reader.split_file} missing: run `bench data prepare {name}` for the published one")
            splits = reader.build_split()
            reader.validate(splits)
        else:
            splits = reader.read()
    except BenchError as e:
        row.errors.append(str(e))
    if splits is None:
        return row
    row.counts = (len(splits.train), len(splits.val), len(splits.test))
    row.classes = len(splits.classnames)
    paths = sorted({d.impath for d in (*splits.train, *splits.val, *splits.test)})
    row.missing, row.unreadable = _scan_images(paths, decode, name)
    return row


def check(names: Iterable[str], root: str | Path, decode: bool = True) -> list[CheckRow]:
    """Check each dataset; never raises for a bad dataset (its row says what is wrong)."""
    root = Path(root).expanduser()
    return [check_one(n.lower(), root, decode) for n in names]


def _fmt_count(row: CheckRow, i: int) -> str:
    if row.counts is None:
        return "-"
    exp = row.expected[i]
    match = row.count_matches(i)
    if match is None:
        return f"{row.counts[i]} (published: unknown)"
    return f"{row.counts[i]}" if match else f"[yellow]{row.counts[i]} ≠ {exp}[/]"


def render(rows: Sequence[CheckRow]) -> Table:
    """The rich table of ``bench data check``."""
    colour = {"ok": "green", "differs": "yellow", "unusable": "red", "missing": "red"}
    table = Table(title="bench data check")
    for col in ("dataset", "status", "classes", "train", "val", "test", "missing", "unreadable", "problems"):
        table.add_column(col, overflow="fold")
    for r in rows:
        problems = [*r.errors, *r.warnings]
        problems += [f"missing: {p}" for p in r.missing[:3]] + [f"unreadable: {p}" for p in r.unreadable[:3]]
        table.add_row(
            r.dataset,
            f"[{colour[r.status]}]{r.status}[/]",
            str(r.classes) if r.found else "-",
            *(_fmt_count(r, i) for i in range(3)),
            str(len(r.missing)),
            str(len(r.unreadable)),
            "\n".join(problems),
        )
    return table


def preflight(names: Iterable[str], root: str | Path) -> None:
    """Cheap check before ``bench run``: folders, split files, class folders and that every image file exists.

    Every dataset is checked before anything is raised, so a data root missing twelve datasets names all twelve in one
    :class:`DataError`, with the one command that prepares them; images are not decoded (``bench data check`` does).
    """
    root = checked_root(Path(root).expanduser())
    problems: dict[str, str] = {}
    for name in names:
        name = name.lower()
        with phase(f"{name}: reading the split and checking that its images exist"):
            try:
                splits = reader_for(name, root).read()
            except DataError as e:
                problems[name] = str(e)
                continue
            missing = [d.impath for items in (splits.train, splits.val, splits.test) for d in items]
            missing = [p for p in missing if not os.path.exists(p)]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            problems[name] = (
                f"{name}: image {missing[0]}{more} listed in the split is missing; restore it or run "
                f"`bench data check {name}`"
            )
    if not problems:
        return
    if len(problems) == 1:
        raise DataError(next(iter(problems.values())))
    lines = "\n".join(f"  {why}" for why in problems.values())
    preparable = [n for n in problems if n in BENCHMARK]  # a plugin's own dataset has no download recipe here
    fix = (
        f"prepare them with `bench data prepare {','.join(preparable)} --data-root {root}`, then " if preparable else ""
    )
    raise DataError(
        f"{len(problems)} datasets are not ready under {root}:\n{lines}\n{fix}`bench data check {','.join(problems)}`"
    )
