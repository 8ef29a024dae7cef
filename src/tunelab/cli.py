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
# what `data check` fails on and `data clean` drops by default (kept here so --help shows them)
_DEFAULT_FAIL_ON = ("malformed", "empty", "exact", "near", "conflicts", "chosen_eq_rejected", "contaminated")
_DEFAULT_DROP = ("malformed", "empty", "exact", "near", "chosen_eq_rejected", "contaminated")
app.add_typer(data_app, name="data")

_state = {"debug": False}


def _console(stderr: bool = True) -> Any:
    from rich.console import Console

    return Console(stderr=stderr)


def _run(fn: Callable[[], Any]) -> Any:
    """Call ``fn``; print tunelab errors as message + hint (traceback only with --debug)."""
    from tunelab.cli_text import cli_lang
    from tunelab.error_texts import render_error
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
        message, hint = render_error(exc, cli_lang())  # English unless TUNELAB_LANG/LANG asks for Chinese
        console.print(f"[bold red]{t('error')}:[/] {message}", markup=True, highlight=False)
        if hint:
            console.print(f"[yellow]{t('hint')}:[/] {hint}", markup=True, highlight=False)
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
    nproc_per_node: int | None = typer.Option(None, "--nproc-per-node", help=t("launch.nproc")),
    nnodes: int | None = typer.Option(None, "--nnodes", help=t("launch.nnodes")),
    node_rank: int | None = typer.Option(None, "--node-rank", help=t("launch.node_rank")),
    master_addr: str | None = typer.Option(None, "--master-addr", help=t("launch.master_addr")),
    master_port: int | None = typer.Option(None, "--master-port", help=t("launch.master_port")),
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
        from tunelab.launch import plan_launch, run_launch

        plan = plan_launch(
            nproc_per_node=nproc_per_node,
            nnodes=nnodes,
            node_rank=node_rank,
            master_addr=master_addr,
            master_port=master_port,
            shutdown_timeout=cfg.training.ddp_timeout,
        )
        if plan is not None:  # the same command once per rank, through torchrun
            argv = [*(["--debug"] if _state["debug"] else []), "train", *([path] if path else []), *items]
            raise typer.Exit(run_launch(plan, [*argv, *(["--lang", lang] if lang else [])], _console()))
        from tunelab.train import train as run_train

        result = run_train(cfg, console=_console())
        try:
            _report_run(result)
        finally:  # ranks exit together, after rank 0 printed: the launcher reads one exit code
            from tunelab.distributed import barrier

            barrier()

    _run(go)


@app.command("check", help=t("check"))
def check(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    command: str = typer.Option("auto", "--for", help=t("check.for")),
) -> None:
    """Exit 0 when the config is valid, 1 with every problem listed once (file line or command line)."""
    from tunelab.config.loader import read_config_values
    from tunelab.config.validate import check_config
    from tunelab.errors import ConfigError

    path, items = _split_config_args(config, overrides or [])
    try:
        values, where = read_config_values(path, items)
    except ConfigError as exc:
        _console().print(f"[bold red]{t('error')}:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    if command == "auto":  # LLaMA-Factory's eval layout names a task and no dataset
        command = "eval" if values.get("task") and not values.get("dataset") else "train"
        if command == "train" and not values.get("dataset") and _names_serving_or_export(values):
            command = "any"  # LLaMA-Factory's inference/ and merge_lora/ configs carry no dataset
    report = check_config(values, **where, command=command if command in ("train", "eval") else None)
    if not report.ok:
        _console().print(report.error().message, markup=False, highlight=False)
        raise typer.Exit(1)
    cfg = report.config
    print(
        f"{where['source']}: valid for {command} (stage {cfg.finetuning.stage}, {cfg.finetuning.finetuning_type})"
    )


def _names_serving_or_export(values: dict[str, Any]) -> bool:
    """Whether a config is one for chat/api (infer_backend) or export (export_dir), not training."""
    return any(key in values for key in ("infer_backend", "export_dir"))


def _report_run(result: Any) -> None:
    from tunelab.distributed import is_writer

    # every rank ends with the run's exit code; only rank 0 prints the summary
    console = _console() if is_writer() else _console_off()
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


def _console_off() -> Any:
    from rich.console import Console

    return Console(quiet=True)


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


@data_app.command("check", help=t("data.check"))
def data_check(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    out: str = typer.Option("data_check", "-o", "--out", help=t("data.check.out")),
    near_threshold: float = typer.Option(0.8, "--near-threshold", help=t("data.near_threshold")),
    fail_on: str = typer.Option(",".join(_DEFAULT_FAIL_ON), "--fail-on", help=t("data.fail_on")),
    no_tokens: bool = typer.Option(False, "--no-tokens", help=t("data.no_tokens")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> int:
        from tunelab.cli_text import cli_lang
        from tunelab.config import load_config
        from tunelab.quality import check_data
        from tunelab.quality.clean import parse_drop
        from tunelab.quality.report import render_report, write_report

        cfg = load_config(path, items)
        kinds = parse_drop(fail_on)
        report = check_data(cfg, near_threshold=near_threshold, tokens=not no_tokens)
        render_report(report, _console(stderr=False), lang=cli_lang(), fail_on=kinds)
        files = write_report(report, out)
        _console().print(f"report: {', '.join(str(f) for f in files)}", soft_wrap=True)
        return report.problems(kinds)

    if _run(go):
        raise typer.Exit(1)


@data_app.command("clean", help=t("data.clean"))
def data_clean(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    out: str = typer.Option(..., "-o", "--out", help=t("data.clean.out")),
    drop: str = typer.Option(",".join(_DEFAULT_DROP), "--drop", help=t("data.drop")),
    near_threshold: float = typer.Option(0.8, "--near-threshold", help=t("data.near_threshold")),
    streaming: bool = typer.Option(False, "--streaming", help=t("data.clean.streaming")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from tunelab.config import load_config
        from tunelab.quality.clean import clean_data, parse_drop
        from tunelab.quality.writer import train_hint

        cfg = load_config(path, items)
        if streaming:
            from tunelab.quality.stream_clean import stream_clean

            counts = stream_clean(cfg, out, drop=parse_drop(drop), near_threshold=near_threshold)
        else:
            result = clean_data(cfg, out, drop=parse_drop(drop), near_threshold=near_threshold)
            counts = {"kept": result.kept, "removed": result.removed}
        removed = ", ".join(f"{k} {v}" for k, v in counts["removed"].items()) or "nothing"
        kept = ", ".join(f"{k} {v}" for k, v in counts["kept"].items())
        console = _console(stderr=False)
        console.print(f"kept: {kept}; removed: {removed} (see {Path(out) / 'removed.jsonl'})", soft_wrap=True)
        console.print(
            f"train on the cleaned copies with: {train_hint(cfg.data.dataset or [], Path(out))}",
            soft_wrap=True,
        )

    _run(go)


@data_app.command("select", help=t("data.select"))
def data_select(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    out: str = typer.Option(..., "-o", "--out", help=t("data.select.out")),
    by: str = typer.Option("ifd", "--by", help=t("data.select.by")),
    keep: float = typer.Option(0.3, "--keep", help=t("data.select.keep")),
    prefer: str | None = typer.Option(None, "--prefer", help=t("data.select.prefer")),
    batch_size: int = typer.Option(8, "--batch-size", help=t("data.select.batch_size")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from tunelab.config import load_config
        from tunelab.quality.select import select_data
        from tunelab.quality.writer import train_hint

        cfg = load_config(path, items)
        console = _console(stderr=False)
        result = select_data(
            cfg, out, by=by, keep=keep, prefer=prefer, batch_size=batch_size, console=console
        )
        console.print(
            f"kept {result.n_kept}/{result.n_total} by {by} (mean {result.mean_kept:.4g} kept vs "
            f"{result.mean_all:.4g} all; {result.n_scored_now} scored now, the rest resumed from scores.jsonl)",
            soft_wrap=True,
        )
        console.print(
            f"train on the selection with: {train_hint(cfg.data.dataset or [], result.out_dir)}",
            soft_wrap=True,
        )

    _run(go)


@data_app.command("augment", help=t("data.augment"))
def data_augment(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    out: str = typer.Option(..., "-o", "--out", help=t("data.augment.out")),
    method: str = typer.Option(..., "--method", help=t("data.augment.method")),
    n: int = typer.Option(1, "-n", help=t("data.augment.n")),
    model: str | None = typer.Option(None, "--model", help=t("data.augment.model")),
    template: str | None = typer.Option(None, "--template", help=t("src.template")),
    api_base: str | None = typer.Option(None, "--api-base", help=t("data.augment.api_base")),
    api_model: str | None = typer.Option(None, "--api-model", help=t("data.augment.api_model")),
    batch_size: int = typer.Option(8, "--batch-size", help=t("data.select.batch_size")),
) -> None:
    import os

    path, items = _split_config_args(config, overrides or [])
    api_key = os.environ.get("OPENAI_API_KEY") or os.environ.get("TUNELAB_API_KEY")

    def go() -> None:
        from tunelab.config import load_config
        from tunelab.quality.augment import augment_data
        from tunelab.quality.rewrite import ApiRewriter, EngineRewriter

        cfg = load_config(path, items)
        rewriter = None
        if api_base:
            rewriter = ApiRewriter(api_base, model=api_model, api_key=api_key)
        elif method != "eda":
            from tunelab.infer.engine import chat_engine

            engine = chat_engine(model=model, template=template) if model else chat_engine(cfg)
            rewriter = EngineRewriter(engine)
        console = _console(stderr=False)
        result = augment_data(
            cfg, out, method=method, n=n, rewriter=rewriter, batch_size=batch_size, console=console
        )
        console.print(
            f"{result.n_original} records + {result.n_added} new ({method}) in {result.out_dir}",
            soft_wrap=True,
        )
        for note in result.notes:
            console.print(f"[yellow]{note}[/]", soft_wrap=True)
        console.print(f"train on it with: {result.config_hint}", soft_wrap=True)

    _run(go)


@data_app.command("teacher-logits", help=t("data.teacher_logits"))
def data_teacher_logits(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    output: str = typer.Option(..., "-o", "--output", help=t("data.cache_dir")),
    topk: int | None = typer.Option(None, "--topk", help=t("data.topk")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from tunelab.config import load_config
        from tunelab.train.teacher_cache import write_teacher_cache

        out = write_teacher_cache(load_config(path, items), output, topk=topk, console=_console())
        _console().print(f"[green]done[/]: {out}  (train with kd_teacher_cache={out})")

    _run(go)


@data_app.command("distill-responses", help=t("data.distill"))
def data_distill_responses(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    output: str = typer.Option(..., "-o", "--output", help=t("data.distill_file")),
    api_base: str | None = typer.Option(None, "--api-base", help=t("data.api_base")),
    api_model: str | None = typer.Option(None, "--api-model", help=t("data.api_model")),
    api_key: str | None = typer.Option(None, "--api-key", envvar="OPENAI_API_KEY", help=t("data.api_key")),
    batch_size: int = typer.Option(8, "--batch-size", help=t("data.batch_size")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from rich.progress import Progress

        from tunelab.config import load_config
        from tunelab.infer.distill import distill_responses, prompts_of

        cfg = load_config(path, items)
        with Progress(console=_console()) as bar:
            task = bar.add_task("teacher answers", total=len(prompts_of(cfg)))
            out = distill_responses(
                cfg,
                output,
                api_base=api_base,
                api_model=api_model,
                api_key=api_key,
                batch_size=batch_size,
                progress=lambda n: bar.advance(task, n),
            )
        _console().print(f"[green]done[/]: {out}  (train with dataset={out.stem} dataset_dir={out.parent})")

    _run(go)


@data_app.command("init-student", help=t("data.init_student"))
def data_init_student(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    output: str = typer.Option(..., "-o", "--output", help=t("data.student_dir")),
    layers: str | None = typer.Option(None, "--layers", help=t("data.layers")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from tunelab.config import load_config
        from tunelab.train.student_init import init_student

        out = init_student(load_config(path, items), output, spec=layers)
        _console().print(f"[green]done[/]: {out}  (train it with model_name_or_path={out})")

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


@app.command("export", help=t("export"))
def export_cmd(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    run: str | None = typer.Option(None, "--run", help=t("src.run")),
    model: str | None = typer.Option(None, "--model", help=t("src.model")),
    adapter: str | None = typer.Option(None, "--adapter", help=t("src.adapter")),
    push_to_hub: str | None = typer.Option(None, "--push-to-hub", metavar="REPO", help=t("export.push")),
    private: bool = typer.Option(False, "--private", help=t("export.private")),
) -> None:
    path, items = _split_config_args(config, overrides or [])
    if push_to_hub:
        items = [*items, f"export_hub_model_id={push_to_hub}"]

    def go() -> None:
        from tunelab.export import export_model

        result = export_model(
            path,
            items,
            run=run,
            model=model,
            adapter=adapter,
            hub_private=private or None,
            console=_console(),
        )
        report = result.report
        print(
            f"exported: {result.export_dir}  ({report['n_shards']} {report['format']} shard(s), {report['dtype']})"
        )
        if result.verification is not None:
            print(result.verification.describe())
        print(f"report: {result.export_dir / 'export_report.json'}")
        if (report.get("hub_push") or {}).get("url"):
            print(f"pushed: {report['hub_push']['url']}")

    _run(go)


@app.command("expand-model", help=t("expand_model"))
def expand_model_cmd(
    model: str = typer.Argument(..., help=t("expand_model.model")),
    output_dir: str = typer.Argument(..., help=t("expand_model.output")),
    num_expand: int = typer.Option(..., "--num-expand", help=t("expand_model.num")),
) -> None:
    def go() -> None:
        from pathlib import Path

        from tunelab.model.llama_pro import expand_model

        added = expand_model(model, Path(output_dir), num_expand)
        print(f"expanded: {output_dir}  (new identity blocks at layers {', '.join(map(str, added))})")
        print(f"train with: use_llama_pro=true freeze_trainable_layers={num_expand}")

    _run(go)


@app.command("eval", help=t("eval"))
def eval_cmd(
    config: str | None = typer.Argument(None, help=t("eval.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    model: str | None = typer.Option(None, "--model", help=t("src.model")),
    adapter: str | None = typer.Option(None, "--adapter", help=t("src.adapter")),
    run: str | None = typer.Option(None, "--run", help=t("src.run")),
    template: str | None = typer.Option(None, "--template", help=t("src.template")),
    compare: str | None = typer.Option(None, "--compare", help=t("eval.compare")),
    predict: bool = typer.Option(False, "--predict", help=t("eval.predict")),
    task: str | None = typer.Option(None, "--task", help=t("eval.task")),
    output_dir: str | None = typer.Option(None, "--output-dir", help=t("eval.output")),
) -> None:
    path, items = _split_config_args(config, overrides or [])
    items += ["predict_with_generate=true"] if predict else []
    items += [f"task={task}"] if task else []

    def go() -> None:
        from tunelab.evaluate.report import render_comparison, render_metrics
        from tunelab.evaluate.run import evaluate

        console = _console()
        result = evaluate(
            path,
            items,
            model=model,
            adapter=adapter,
            run=run,
            template=template,
            compare=compare,
            output_dir=output_dir,
            console=console,
        )
        out = _console(stderr=False)
        if result.reference is not None:
            ref = result.reference
            render_comparison(
                ref.metrics, result.metrics, out, reference_label=ref.label, candidate_label=result.label
            )
        else:
            render_metrics(result.metrics, out, title=f"evaluation: {result.label}")
        where = result.output_dir.parent if result.reference is not None else result.output_dir
        out.print(f"results: {where}")

    _run(go)


@app.command("chat", help=t("chat"))
def chat_cmd(
    config: str | None = typer.Argument(None, help=t("eval.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    model: str | None = typer.Option(None, "--model", help=t("src.model")),
    adapter: str | None = typer.Option(None, "--adapter", help=t("src.adapter")),
    run: str | None = typer.Option(None, "--run", help=t("src.run")),
    template: str | None = typer.Option(None, "--template", help=t("src.template")),
    system: str | None = typer.Option(None, "--system", help=t("chat.system")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from tunelab.infer.engine import chat_engine
        from tunelab.infer.terminal_chat import run_chat

        engine = chat_engine(path, items, model=model, adapter=adapter, run=run, template=template)
        run_chat(engine, system=system, lang=_lang_default())

    _run(go)


@app.command("api", help=t("api"))
def api_cmd(
    config: str | None = typer.Argument(None, help=t("eval.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    model: str | None = typer.Option(None, "--model", help=t("src.model")),
    adapter: str | None = typer.Option(None, "--adapter", help=t("src.adapter")),
    run: str | None = typer.Option(None, "--run", help=t("src.run")),
    template: str | None = typer.Option(None, "--template", help=t("src.template")),
    host: str = typer.Option("127.0.0.1", "--host", help=t("api.host")),
    port: int = typer.Option(8000, "--port", help=t("api.port")),
    model_name: str | None = typer.Option(None, "--model-name", help=t("api.model_name")),
    max_batch_size: int = typer.Option(32, "--max-batch-size", help=t("api.max_batch_size")),
    max_waiting: int = typer.Option(256, "--max-waiting", help=t("api.max_waiting")),
    max_input_tokens: int | None = typer.Option(None, "--max-input-tokens", help=t("api.max_input_tokens")),
    request_timeout: float | None = typer.Option(None, "--request-timeout", help=t("api.request_timeout")),
    max_body_bytes: int = typer.Option(4 * 1024 * 1024, "--max-body-bytes", help=t("api.max_body_bytes")),
    accept_any_model: bool = typer.Option(False, "--accept-any-model", help=t("api.accept_any_model")),
    log_prompts: bool = typer.Option(False, "--log-prompts", help=t("api.log_prompts")),
    public_docs: bool = typer.Option(False, "--public-docs", help=t("api.public_docs")),
) -> None:
    import os

    path, items = _split_config_args(config, overrides or [])
    api_key = os.environ.get("TUNELAB_API_KEY") or None

    def go() -> None:
        from tunelab.infer.api import ServeOptions
        from tunelab.infer.server import serve_api

        options = ServeOptions(
            max_batch_size=max_batch_size, max_waiting=max_waiting, max_input_tokens=max_input_tokens,
            request_timeout=request_timeout, max_body_bytes=max_body_bytes, accept_any_model=accept_any_model,
            log_prompts=log_prompts, public_docs=public_docs,
        )  # fmt: skip
        serve_api(
            path, items, model=model, adapter=adapter, run=run, template=template,
            host=host, port=port, api_key=api_key, model_id=model_name, options=options, console=_console(),
        )  # fmt: skip

    _run(go)


# --- advise, estimate, find-batch, lr-find --------------------------------------------------------
def _tune_config(path: str | None, items: list[str], model_config: str | None) -> Any:
    """load_config; with --model-config a config may leave model_name_or_path out."""
    from tunelab.config import load_config
    from tunelab.tune.config_out import read_user_config

    if model_config and "model_name_or_path" not in read_user_config(path, items):
        items = [*items, f"model_name_or_path={model_config}"]
    return load_config(path, items)


def _write_answer(
    output: str, path: str | None, items: list[str], updates: dict, comments: dict, header: str
) -> None:
    from tunelab.tune.config_out import read_user_config, write_config

    written = write_config(output, read_user_config(path, items), updates, comments, header=header)
    _console(stderr=False).print(f"{t('written')}: {written}", highlight=False)


@app.command("advise", help=t("advise"))
def advise_cmd(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    task: str | None = typer.Option(None, "--task", help=t("advise.task")),
    gpu_mem: float | None = typer.Option(None, "--gpu-mem", help=t("hw.gpu_mem")),
    model_config: str | None = typer.Option(None, "--model-config", help=t("hw.model_config")),
    output: str | None = typer.Option(None, "-o", "--output", help=t("advise.output")),
    nproc_per_node: int | None = typer.Option(None, "--nproc-per-node", help=t("hw.nproc_per_node")),
    nnodes: int = typer.Option(1, "--nnodes", help=t("hw.nnodes")),
    measure: bool = typer.Option(False, "--measure", help=t("advise.measure")),
    measure_steps: int = typer.Option(100, "--measure-steps", help=t("advise.measure_steps")),
    lr_dir: str | None = typer.Option(None, "--lr-dir", help=t("advise.lr_dir")),
    study: str | None = typer.Option(None, "--study", help=t("advise.study")),
    lang: str | None = typer.Option(None, "--lang", help=t("lang")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from tunelab.tune.advise import advise
        from tunelab.tune.views import render_advice, write_lr_answer

        language = lang or _lang_default()
        cfg = _tune_config(path, items, model_config)
        advice = advise(
            cfg, task=task, gpu_mem=gpu_mem, model_config=model_config, nproc_per_node=nproc_per_node,
            nnodes=nnodes, measure=measure, measure_steps=measure_steps, lr_dir=lr_dir, config_path=path,
            study=study, console=_console(),
        )  # fmt: skip
        render_advice(advice, _console(stderr=False), language)
        if lr_dir and advice.lr is not None:
            write_lr_answer(advice.lr, Path(lr_dir))
        if output:
            header = "\n".join(
                (f"tunelab advise: task {advice.task}", advice.shape.describe(), advice.hardware.describe())
            )
            _write_answer(output, path, items, advice.updates(), advice.comments(language), header)

    _run(go)


@app.command("estimate", help=t("estimate"))
def estimate_cmd(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    gpu_mem: float | None = typer.Option(None, "--gpu-mem", help=t("hw.gpu_mem")),
    model_config: str | None = typer.Option(None, "--model-config", help=t("hw.model_config")),
    no_probe: bool = typer.Option(False, "--no-probe", help=t("estimate.no_probe")),
    probe_steps: int = typer.Option(3, "--probe-steps", help=t("estimate.probe_steps")),
    as_json: bool = typer.Option(False, "--json", help=t("estimate.json")),
    nproc_per_node: int | None = typer.Option(None, "--nproc-per-node", help=t("hw.nproc_per_node")),
    nnodes: int = typer.Option(1, "--nnodes", help=t("hw.nnodes")),
    lang: str | None = typer.Option(None, "--lang", help=t("lang")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from tunelab.tune.estimate import estimate
        from tunelab.tune.views import render_estimate

        cfg = _tune_config(path, items, model_config)
        report = estimate(
            cfg,
            model_config=model_config,
            gpu_mem=gpu_mem,
            probe=not no_probe,
            probe_steps=probe_steps,
            nproc_per_node=nproc_per_node,
            nnodes=nnodes,
            console=_console(),
        )
        if as_json:
            import json

            print(json.dumps(report.as_dict(), indent=2))
        else:
            render_estimate(report, _console(stderr=False), lang or _lang_default())
        if not report.fits:
            raise typer.Exit(3)

    _run(go)


@app.command("find-batch", help=t("find_batch"))
def find_batch_cmd(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    target_batch: int | None = typer.Option(None, "--target-batch", help=t("find_batch.target")),
    max_mem: float | None = typer.Option(None, "--max-mem", help=t("find_batch.max_mem")),
    max_batch: int | None = typer.Option(None, "--max-batch", help=t("find_batch.max_batch")),
    max_eval_batch: int | None = typer.Option(None, "--max-eval-batch", help=t("find_batch.max_eval_batch")),
    seq_len: int | None = typer.Option(None, "--seq-len", help=t("find_batch.seq_len")),
    output: str | None = typer.Option(None, "-o", "--output", help=t("find_batch.output")),
    nproc_per_node: int | None = typer.Option(None, "--nproc-per-node", help=t("hw.nproc_per_node")),
    nnodes: int = typer.Option(1, "--nnodes", help=t("hw.nnodes")),
    lang: str | None = typer.Option(None, "--lang", help=t("lang")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from tunelab.config import load_config
        from tunelab.tune.find_batch import find_batch
        from tunelab.tune.views import render_find_batch

        cfg = load_config(path, items)
        search = find_batch(
            cfg, target_batch=target_batch, max_mem_gib=max_mem, max_batch=max_batch,
            max_eval_batch=max_eval_batch, seq_len=seq_len, nproc_per_node=nproc_per_node, nnodes=nnodes,
            console=_console(),
        )  # fmt: skip
        render_find_batch(search, _console(stderr=False), lang or _lang_default())
        if output:
            note = f"tunelab find-batch: probed at {search.seq_len} tokens"
            comments = {key: note for key in search.updates()}
            _write_answer(output, path, items, search.updates(), comments, "tunelab find-batch")

    _run(go)


@app.command("lr-find", help=t("lr_find"))
def lr_find_cmd(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    start_lr: float = typer.Option(1e-7, "--start-lr", help=t("lr_find.start")),
    end_lr: float = typer.Option(1.0, "--end-lr", help=t("lr_find.end")),
    steps: int = typer.Option(100, "--steps", help=t("lr_find.steps")),
    output_dir: str | None = typer.Option(None, "--output-dir", help=t("lr_find.output_dir")),
    output: str | None = typer.Option(None, "-o", "--output", help=t("lr_find.output")),
    lang: str | None = typer.Option(None, "--lang", help=t("lang")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from tunelab.config import load_config
        from tunelab.tune.advise_lr import lr_find_answer
        from tunelab.tune.lr_find import lr_find
        from tunelab.tune.views import render_lr_find, write_lr_answer

        cfg = load_config(path, items)
        result = lr_find(
            cfg, start_lr=start_lr, end_lr=end_lr, num_steps=steps, output_dir=output_dir, console=_console()
        )
        answer = lr_find_answer(cfg, result, config_path=path)
        render_lr_find(result, _console(stderr=False), lang or _lang_default(), answer)
        if result.json_path is not None:
            write_lr_answer(answer, result.json_path.parent)
        if output:
            from tunelab.tune.lr_answer import describe_answer

            comment = f"tunelab lr-find: source lr-find, {result.method} (see {result.plot_path})"
            comment += f"; with the recipe: {describe_answer(answer)}"
            updates, comments = {"learning_rate": result.suggestion}, {"learning_rate": comment}
            _write_answer(output, path, items, updates, comments, "tunelab lr-find")

    _run(go)


# --- hyperparameter search and run comparison ---------------------------------------------------
runs_app = typer.Typer(help=t("runs"), no_args_is_help=True)
app.add_typer(runs_app, name="runs")


def _render_study_lr(cfg: Any, study_dir: Path) -> None:
    """The study's best learning rate with its source and the recipe's next to it."""
    from tunelab.tune.advise_lr import study_answer
    from tunelab.tune.views import render_lr_answer

    answer = study_answer(cfg, study_dir)
    if answer is not None:
        render_lr_answer(answer, _console(stderr=False), _lang_default())


@app.command("sweep", help=t("sweep"))
def sweep_cmd(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    grid: list[str] | None = typer.Option(None, "--grid", help=t("sweep.grid")),
    around: list[str] | None = typer.Option(None, "--around", help=t("sweep.around")),
    random_n: int = typer.Option(0, "--random", help=t("sweep.random")),
    workers: int | None = typer.Option(None, "--workers", help=t("study.workers")),
    study_dir: str | None = typer.Option(None, "--study-dir", "-o", help=t("study.dir")),
    nproc_per_node: int = typer.Option(1, "--nproc-per-node", min=1, help=t("study.nproc")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from tunelab.config import load_config
        from tunelab.tune.summary import render_study
        from tunelab.tune.sweep import parse_grid, plan_sweep, split_sweep_items, sweep
        from tunelab.tune.trials import default_study_dir

        plain, axes = split_sweep_items(items)
        cfg = load_config(path, plain)
        keys = [k for item in around or [] for k in item.split(",") if k]
        plans = plan_sweep(cfg, grid=parse_grid([*(grid or []), *axes]), around=keys, n_random=random_n)
        out = study_dir or default_study_dir("sweep", path)
        result = sweep(cfg, out, plans, n_workers=workers, console=_console(), nproc_per_node=nproc_per_node)
        render_study(result.study_dir, result.trials, result.summary, _console(stderr=False))
        _render_study_lr(cfg, result.study_dir)
        if result.interrupted:
            raise typer.Exit(130)

    _run(go)


@app.command("tune", help=t("tune"))
def tune_cmd(
    config: str | None = typer.Argument(None, help=t("train.config")),
    overrides: list[str] | None = typer.Argument(None, help=t("train.overrides")),
    n_trials: int | None = typer.Option(None, "--n-trials", help=t("tune.n_trials")),
    timeout: float | None = typer.Option(None, "--timeout", help=t("tune.timeout")),
    workers: int | None = typer.Option(None, "--workers", help=t("study.workers")),
    storage: str | None = typer.Option(None, "--storage", help=t("tune.storage")),
    study_dir: str | None = typer.Option(None, "--study-dir", "-o", help=t("study.dir")),
    nproc_per_node: int = typer.Option(1, "--nproc-per-node", min=1, help=t("study.nproc")),
    show_space: bool = typer.Option(False, "--show-space", help=t("tune.show_space")),
) -> None:
    path, items = _split_config_args(config, overrides or [])

    def go() -> None:
        from tunelab.config import load_config

        cfg = load_config(path, items)
        if show_space:
            from tunelab.tune.space import format_space

            print(format_space(cfg), end="")
            return
        from tunelab.tune.study import tune
        from tunelab.tune.summary import render_study
        from tunelab.tune.trials import default_study_dir

        out = study_dir or default_study_dir("tune", path)
        result = tune(
            cfg,
            out,
            n_trials=n_trials,
            timeout=timeout,
            n_workers=workers,
            storage=storage,
            console=_console(),
            nproc_per_node=nproc_per_node,
        )
        render_study(result.study_dir, result.trials, result.summary, _console(stderr=False))
        _render_study_lr(cfg, result.study_dir)
        if result.interrupted:
            _console().print(
                f"interrupted: run the same command again to continue the study in {result.study_dir}"
            )
            raise typer.Exit(130)
        if result.best is None:
            raise typer.Exit(3)

    _run(go)


@runs_app.command("list", help=t("runs.list"))
def runs_list(directory: str = typer.Argument("runs", help=t("runs.dir"))) -> None:
    def go() -> None:
        from tunelab.runs.listing import list_runs, render_run_list

        render_run_list(list_runs(directory), _console(stderr=False))

    _run(go)


@runs_app.command("compare", help=t("runs.compare"))
def runs_compare(
    runs: list[str] = typer.Argument(..., help=t("runs.runs")),
    plot: str | None = typer.Option(None, "--plot", help=t("runs.plot_path")),
) -> None:
    def go() -> None:
        from tunelab.runs.compare import compare_runs, render_comparison

        render_comparison(compare_runs(runs, plot_path=plot), _console(stderr=False))

    _run(go)


@runs_app.command("plot", help=t("runs.plot"))
def runs_plot(run: str = typer.Argument(..., help=t("runs.run"))) -> None:
    def go() -> None:
        from tunelab.errors import ConfigError
        from tunelab.runs.plots import plot_run
        from tunelab.runs.summary import is_run_dir

        if not is_run_dir(Path(run)):
            raise ConfigError(
                f"{run} is not a run directory (no config.yaml)", "`tunelab runs list` shows the runs"
            )
        for written in plot_run(run) or []:
            print(written)

    _run(go)


@app.command("webui", help=t("webui"))
def webui(
    host: str = typer.Option("127.0.0.1", "--host", help=t("webui.host")),
    port: int = typer.Option(7860, "--port", help=t("webui.port")),
    auth: str | None = typer.Option(None, "--auth", help=t("webui.auth")),
    runs_dir: str = typer.Option("runs", "--runs-dir", help=t("webui.runs_dir")),
    allow: list[str] | None = typer.Option(None, "--allow", help=t("webui.allow")),
    lang: str | None = typer.Option(None, "--lang", help=t("webui.lang")),
) -> None:
    def go() -> None:
        from tunelab.webui.app import launch  # imports gradio: only here, never for --help

        launch(
            host=host,
            port=port,
            auth=auth,
            runs_dir=runs_dir,
            allowed=allow or [],
            lang=lang or _lang_default(),
        )

    _run(go)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
