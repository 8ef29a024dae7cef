"""The `tunelab` command: parse, call one function of a feature module, print. No logic here.

Feature modules are imported inside the commands so that `tunelab --help` never imports torch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from tunelab.cli_text import t

__all__ = ["app", "main"]

app = typer.Typer(help=t("app"), no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help=t("data"), no_args_is_help=True)
app.add_typer(data_app, name="data")

_state = {"debug": False}


def _console(stderr: bool = True) -> Any:
    from rich.console import Console

    return Console(stderr=stderr)


def _run(fn: Callable[[], Any]) -> Any:
    """Call ``fn``; print tunelab errors as message + hint (traceback only with --debug)."""
    from tunelab.errors import TunelabError

    try:
        if not _state["debug"]:
            from tunelab.quiet import quiet_libraries

            quiet_libraries()
        return fn()
    except TunelabError as exc:
        if _state["debug"]:
            raise
        console = _console()
        console.print(f"[bold red]{t('error')}:[/] {exc.message}", markup=True, highlight=False)
        if exc.hint:
            console.print(f"[yellow]{t('hint')}:[/] {exc.hint}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def _split_config_args(config: str | None, overrides: list[str]) -> tuple[str | None, list[str]]:
    """`tunelab train key=value ...` without a file is allowed: a first arg with '=' is an override."""
    if config is not None and "=" in config and not Path(config).is_file():
        return None, [config, *overrides]
    return config, list(overrides)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help=t("debug"))) -> None:
    _state["debug"] = debug


@app.command(help=t("train"))
def train(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    print_config: bool = typer.Option(False, "--print-config", help=t("train.print_config")),
    help_keys: bool = typer.Option(False, "--help-keys", help=t("train.help_keys")),
    lang: str | None = typer.Option(None, "--lang", help=t("lang")),
) -> None:
    if help_keys:
        from tunelab.config.help import format_key_help

        print(format_key_help(lang or _lang_default()))
        return
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from tunelab.config import dump_config, load_config

        cfg = load_config(path, items)
        if print_config:
            print(dump_config(cfg), end="")
            return
        from tunelab.train import train as run_train

        result = run_train(cfg, console=_console())
        _report_run(result)

    _run(go)


def _report_run(result: Any) -> None:
    console = _console()
    if result.status == "interrupted":
        console.print(
            f"[yellow]stopped[/]: checkpoint saved at {result.checkpoint}\n"
            f"resume with: tunelab train {result.run_dir / 'config.yaml'} resume_from_checkpoint=auto"
        )
        raise typer.Exit(130)
    metrics = result.metrics
    shown = {
        k: metrics[k] for k in ("train_loss", "eval_loss", "eval_perplexity", "train_runtime") if k in metrics
    }
    figures = "  ".join(f"{k}={v:.4g}" for k, v in shown.items())
    if result.status == "stopped":  # the health monitor ended a run going wrong: not a success
        console.print(
            f"[red]stopped by the health monitor[/] at step {metrics.get('global_step')}: {result.stop_reason}\n"
            f"checkpoint: {result.checkpoint}  (events: {result.run_dir / 'events.jsonl'})"
        )
        raise typer.Exit(3)
    label = "[green]done[/] (early stopping)" if result.status == "early_stopped" else "[green]done[/]"
    console.print(f"{label}: {result.run_dir}  {figures}")


def _lang_default() -> str:
    from tunelab.cli_text import cli_lang

    return cli_lang()


@data_app.command("preview", help=t("data.preview"))
def data_preview(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    n: int = typer.Option(3, "-n", "--n", help=t("data.n")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from rich.console import Console

        from tunelab.config import load_config
        from tunelab.data.preview import preview_data, render_preview
        from tunelab.model import load_tokenizer

        cfg = load_config(path, items)
        report = preview_data(cfg, load_tokenizer(cfg.model), n=n)
        render_preview(report, Console())

    _run(go)


@app.command(help=t("env"))
def env() -> None:
    from tunelab.envinfo import collect_env, render_env

    render_env(collect_env(), _console(stderr=False))


@app.command(help=t("version"))
def version() -> None:
    from tunelab import __version__

    print(__version__)


@app.command(help=t("demo"))
def demo(
    steps: int = typer.Option(40, "--steps", help=t("demo.steps")),
    output_dir: str = typer.Option("runs/demo-smollm2-identity", "--output-dir", help=t("demo.output")),
) -> None:
    def go() -> None:
        from tunelab.demo import run_demo

        run_demo(output_dir=output_dir, steps=steps, console=_console(stderr=False))

    _run(go)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
