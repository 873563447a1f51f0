"""``bench toy ...``: pretrain the toy CLIP and write the toy datasets (mounted by ``bench.cli`` as a sub-app)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from bench.cli.common import DataRootOpt, phases_shown, user_errors
from bench.errors import ConfigError

toy_app = typer.Typer(help="The offline toy world: generate its datasets, pretrain its CLIP.", no_args_is_help=True)


@toy_app.command()
def pretrain(
    out: Annotated[
        Path,
        typer.Option(dir_okay=False, help="Where to write the compact checkpoint (a file)."),
    ] = Path("toy_vit.pt"),
    seed: Annotated[int, typer.Option(help="Seed of the initialisation and of the pair stream.")] = 0,
    steps: Annotated[int, typer.Option(help="AdamW steps (cosine schedule over them).")] = 4000,
    minutes: Annotated[
        float | None,
        typer.Option(help="Instead of --steps: time the first steps and size the run to this many minutes."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Image/caption pairs per step.")] = 128,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    group: Annotated[
        int, typer.Option(help="Build batches from groups of this many hard negatives (same colour/scene/style).")
    ] = 1,
    warmup: Annotated[int, typer.Option(help="Linear warm-up steps.")] = 100,
    aux_weight: Annotated[
        float, typer.Option(help="Weight of the auxiliary attribute-label loss on the image embedding (0: off).")
    ] = 1.0,
    clear_start: Annotated[float, typer.Option(help="Share of clear photos in the stream at the first step.")] = 0.9,
    clear_end: Annotated[float, typer.Option(help="Share of clear photos at the last step (linear in between).")] = 0.3,
    save_every: Annotated[int, typer.Option(help="Also write <out>.step<N>.pt every N steps (0: never).")] = 0,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's choice).")] = None,
    device: Annotated[str, typer.Option(help="cpu, or cuda to pretrain on a GPU.")] = "cpu",
    workers: Annotated[int, typer.Option(help="Data-generating processes.")] = 1,
    final_logit_scale: Annotated[
        float | None, typer.Option(help="Logit scale written to the checkpoint: CLIP's 100 (0: keep the trained one).")
    ] = 100.0,
) -> None:
    """Contrastively pretrain the toy CLIP (toy-vit) from scratch on generated image/caption pairs."""
    from bench.datasets.toy.pretrain import estimate_steps
    from bench.datasets.toy.pretrain import pretrain as run

    with user_errors():
        if minutes is not None:
            steps = estimate_steps(minutes, batch_size, threads, device=device)
            typer.echo(f"--minutes {minutes}: running {steps} steps (not reproducible across machines; pass --steps)")
        t0 = time.time()
        run(
            out=out,
            seed=seed,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            group=group,
            warmup=warmup,
            aux_weight=aux_weight,
            clear_start=clear_start,
            clear_end=clear_end,
            save_every=save_every,
            threads=threads,
            device=device,
            workers=workers,
            final_logit_scale=final_logit_scale or None,
            log=typer.echo,
        )
        typer.echo(
            f"done in {time.time() - t0:.0f}s: seed {seed}, steps {steps}, batch size {batch_size}, group {group}"
        )


@toy_app.command()
def generate(
    data_root: DataRootOpt = None,
    force: Annotated[bool, typer.Option(help="Rewrite the datasets even if present.")] = False,
) -> None:
    """Write the toy datasets in the CoOp layout (images + split_zhou_*.json); a no-op when already there."""
    from bench.datasets.toy.data import DATA_VERSION, SPECS, VERSION_FILE, ensure_toy_data

    with user_errors():
        target = _data_root(data_root)
        if force:
            (target / f".complete-v{DATA_VERSION}.json").unlink(missing_ok=True)
            for spec in SPECS:
                (target / spec.name / VERSION_FILE).unlink(missing_ok=True)
        t0 = time.time()
        with phases_shown():
            path = ensure_toy_data(target)
    typer.echo(f"toy data at {path} ({len(SPECS)} datasets, {time.time() - t0:.1f}s)")


def _data_root(option: Path | None) -> Path:
    """The toy data folder (``bench.data.root``'s order: the toy world's own folder is the default)."""
    from bench.data.root import checked_root, resolve_root
    from bench.datasets.toy.data import default_root

    return checked_root(resolve_root(option, default_root), may_create=True)


def _load_model(path: Path | None):  # -> nn.Module
    """A toy checkpoint as a model in eval mode: the shipped one (None), 'random' (untrained) or a file."""
    from bench.datasets.toy.pretrain import create_toy_model
    from bench.datasets.toy.zeroshot import load_toy_model

    if path is not None and str(path) == "random":
        return create_toy_model().eval()
    if path is not None and not path.is_file():
        raise ConfigError(f"--checkpoint {path} does not exist; pass a file from `bench toy pretrain` (or 'random')")
    try:
        return load_toy_model(path)
    except Exception as e:  # not a torch file, a foreign pickle, another model's weights: one line, not a traceback
        reason = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise ConfigError(
            f"--checkpoint {path} is not a toy CLIP checkpoint ({reason}); pass a file from `bench toy pretrain`"
        ) from None


@toy_app.command()
def probe(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            help="A toy checkpoint (default: the shipped one); 'random' for an untrained model. Repeat it to compare "
            "several (e.g. the <out>.step<N>.pt files of a pretraining run: its learning curve)."
        ),
    ] = None,
    n: Annotated[int, typer.Option(help="Generated images (3/4 train the probe, 1/4 test it).")] = 2400,
    clear: Annotated[bool, typer.Option(help="Probe on clear photos instead of the full pretraining crawl.")] = False,
) -> None:
    """What the toy CLIP's image tower sees: many-shot linear-probe accuracy per scene attribute vs the majority class."""
    from rich.console import Console
    from rich.table import Table

    from bench.datasets.toy.zeroshot import ATTRIBUTES, attribute_probe

    with user_errors():
        models = [(str(path or "shipped"), _load_model(path)) for path in checkpoint or [None]]
    from bench.progress import phase

    rows = []
    with phases_shown():
        for name, model in models:
            with phase(f"{name}: rendering {n} images, probing {len(ATTRIBUTES)} attributes"):
                rows.append((name, attribute_probe(model, n=n, clear=clear)))
    table = Table("checkpoint", *ATTRIBUTES, title="linear-probe accuracy (%) per attribute")
    for name, res in rows:
        table.add_row(name, *(f"{res[a]:.1f}" for a in ATTRIBUTES))
    table.add_row("majority class", *(f"{rows[0][1][a + '_majority']:.1f}" for a in ATTRIBUTES))
    Console(width=200).print(table)


@toy_app.command()
def zeroshot(
    checkpoint: Annotated[Path | None, typer.Option(help="A toy checkpoint (default: the shipped one).")] = None,
    data_root: DataRootOpt = None,
    probe: Annotated[bool, typer.Option(help="Also fit a 16-shot linear probe on each dataset's base classes.")] = True,
) -> None:
    """Zero-shot base/novel/HM of a toy CLIP on every toy dataset, outside the harness (the toy README's table)."""
    from rich.console import Console
    from rich.table import Table

    from bench.datasets.toy.data import SPEC_BY_NAME, ensure_toy_data
    from bench.datasets.toy.zeroshot import linear_probe_gain, zero_shot_report
    from bench.progress import phase
    from bench.report.tables import hm

    with user_errors():
        model = _load_model(checkpoint)
        root = _data_root(data_root)
    with phases_shown():
        data = ensure_toy_data(root)
        report = zero_shot_report(model, data)
        trainable = [name for name in report if not SPEC_BY_NAME[name].test_only]
        gains = {}
        if probe:
            with phase(
                f"16-shot linear probe on the base classes of {len(trainable)} toy datasets", len(trainable)
            ) as done:
                for name in trainable:
                    gains[name] = linear_probe_gain(model, data, name)["probe"]
                    done(1)
    table = Table("dataset", "base", "novel", "HM", "all (chance)", "16-shot probe, base", title="toy zero-shot (%)")
    bases, novels = [], []
    for name, r in report.items():
        if SPEC_BY_NAME[name].test_only:
            table.add_row(name, "", "", "", f"{r['all']:.1f} ({r['chance_all']:.1f})", "")
            continue
        bases.append(r["base"])
        novels.append(r["novel"])
        gain = f"{gains[name]:.1f}" if probe else ""
        table.add_row(name, f"{r['base']:.1f}", f"{r['novel']:.1f}", f"{r['hm']:.1f}",
                      f"{r['all']:.1f} ({r['chance_all']:.1f})", gain)  # fmt: skip
    b, n = sum(bases) / len(bases), sum(novels) / len(novels)
    table.add_row("average", f"{b:.1f}", f"{n:.1f}", f"{hm(b, n):.1f}", "", "")
    Console(width=200).print(table)
