"""``bench config show``: the resolved config of a run, and its hash, before anything runs (mounted by ``bench.cli``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from bench.cli.common import ConfigFileOpt, PluginOpt, user_errors
from bench.errors import ConfigError

if TYPE_CHECKING:
    from bench.sweep.suites import Suite

config_app = typer.Typer(help="See the config a run resolves to (and write one for `bench run --config`).",
                         no_args_is_help=True)  # fmt: skip


@config_app.command("show", context_settings={"allow_extra_args": True})
def show(
    ctx: typer.Context,
    method: Annotated[str, typer.Option("--method", "-m", help="One method.")],
    protocol: Annotated[
        str, typer.Option("--protocol", "-p", help="A protocol of `bench list protocols`, e.g. base2novel.")
    ] = "base2novel",
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="The training dataset (default: the suite's source).")
    ] = None,
    suite: Annotated[str | None, typer.Option(help="real | toy (default: the suite that has the dataset).")] = None,
    config: ConfigFileOpt = None,
    cfg_options: Annotated[
        list[str] | None, typer.Option("--cfg-options", help="key=value overrides, e.g. train.lr=0.01 method.n_ctx=8")
    ] = None,
    plugin: PluginOpt = None,
) -> None:
    """Print the run's resolved config as YAML (defaults ← suite ← --config ← --cfg-options) and its hash, the
    `<method>-<hash>` folder its records go to. Redirect it to a file, edit it, and pass it to `bench run --config`."""
    from bench.config import config_hash, load_config_file, parse_cfg_options, to_yaml
    from bench.registry import load_plugins
    from bench.sweep.plan import resolve_config
    from bench.sweep.protocols import get_protocol
    from bench.sweep.suites import get_suite, suite_names

    method = method
    with user_errors():
        load_plugins(plugin)
        the_protocol = get_protocol(protocol)
        if suite is None:
            found = [n for n in suite_names() if dataset is None or dataset in _datasets(get_suite(n))]
            if not found:
                raise ConfigError(f"--dataset {dataset!r} is in no suite; see `bench list datasets`")
            suite = "real" if "real" in found else found[0]
        the_suite = get_suite(suite)
        if dataset is not None and dataset not in _datasets(the_suite):
            raise ConfigError(f"--dataset {dataset!r} is not in the {suite} suite; valid: "
                              f"{', '.join(_datasets(the_suite))}")  # fmt: skip
        train = dataset or the_suite.source
        if the_protocol.transfer or train in the_suite.domain_generalization:
            train = the_suite.source  # one source model per seed, evaluated on every target
        extra = list(ctx.args)  # `--cfg-options a=1 b=2`: as in `bench run`, the values after the first
        bad = [a for a in extra if "=" not in a]
        if bad:
            raise ConfigError(f"unexpected argument(s) {' '.join(bad)}; see `bench config show --help`")
        options = parse_cfg_options([*(cfg_options or []), *extra])
        from_file = load_config_file(config) if config is not None else {}
        origins = {key: f"--config {config}" for key in from_file if key not in options}
        cfg = resolve_config(method, protocol, train, the_suite, {**from_file, **options}, origins)
        digest = config_hash(method, cfg, the_suite.data_version)
    print(f"# {method} · {protocol} · trained on {train} ({suite} suite) · config hash {digest}")
    print(f"# records: results/records/{suite}/{protocol}/{method}-{digest}/")
    if cfg["train"]["min_steps"]:
        print(f"# train.min_steps={cfg['train']['min_steps']}: at run time the epochs rise until one training takes "
              "that many steps")  # fmt: skip
    print(to_yaml(cfg), end="")


def _datasets(suite: Suite) -> tuple[str, ...]:
    return (*suite.datasets, *suite.domain_generalization)
