"""Terminal output of advise, estimate, find-batch and lr-find, in English or Chinese.

The feature modules return plain results; these functions only lay them out (rich tables) so the
same results can feed the web UI or JSON without a second formatting path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunelab.tune.advise import Advice
    from tunelab.tune.estimate import EstimateReport
    from tunelab.tune.find_batch import BatchSearch
    from tunelab.tune.lr_answer import LrAnswer
    from tunelab.tune.lr_find import LRFindResult

__all__ = [
    "fmt_bytes",
    "fmt_seconds",
    "render_advice",
    "render_estimate",
    "render_find_batch",
    "render_lr_answer",
    "render_lr_find",
    "write_lr_answer",
]

_T: dict[str, tuple[str, str]] = {
    "model": ("model", "模型"),
    "hardware": ("hardware", "硬件"),
    "data": ("data", "数据"),
    "key": ("key", "配置项"),
    "value": ("value", "值"),
    "why": ("why", "依据"),
    "advice": ("recommended config", "推荐配置"),
    "ladder": ("memory is short; fixes tried in order", "显存不足，依次尝试的手段"),
    "fix": ("fix", "手段"),
    "peak": ("estimated peak", "预计峰值"),
    "fits": ("fits", "放得下"),
    "yes": ("yes", "是"),
    "no": ("no", "否"),
    "item": ("item", "项目"),
    "memory": ("memory", "显存"),
    "note": ("detail", "说明"),
    "weights": ("weights", "权重"),
    "trainable": ("trainable parameters", "可训练参数"),
    "gradients": ("gradients", "梯度"),
    "states": ("optimizer states", "优化器状态"),
    "activations": ("activations", "激活值"),
    "loss": ("loss (logits) peak", "损失（logits）峰值"),
    "temps": ("optimizer-step scratch", "优化器步临时内存"),
    "total": ("peak of a training step", "训练步峰值"),
    "eval": ("evaluation peak", "评估峰值"),
    "budget": ("usable on this device", "设备可用"),
    "verdict_fit": ("fits", "放得下"),
    "verdict_nofit": ("does NOT fit", "放不下"),
    "by_batch": ("peak by micro-batch", "不同微批的峰值"),
    "micro": ("micro-batch", "微批"),
    "measured": ("measured on this machine (worst-case batch)", "本机实测（最坏情况批次）"),
    "time": ("time", "时间"),
    "notes": ("notes", "备注"),
    "written": ("written", "已写入"),
    "lr_answer": ("learning rate", "学习率"),
    "lr_with_recipe": (
        "learning rate with the recipe (tunelab advise --measure)",
        "与推荐规则合并后的学习率（tunelab advise --measure）",
    ),
}


def _t(key: str, lang: str) -> str:
    en, zh = _T[key]
    return zh if lang == "zh" else en


def fmt_bytes(value: float) -> str:
    """Bytes in GiB (MiB below 1 GiB)."""
    if abs(value) >= 2**30:
        return f"{value / 2**30:.2f} GiB"
    return f"{value / 2**20:.1f} MiB"


def fmt_seconds(seconds: float) -> str:
    """Seconds as s / min / h."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class _Table:
    """A rich Table whose cells are plain text (model names like tiny:llama: are not emoji codes)."""

    def __init__(self, *columns: str, title: str | None = None) -> None:
        from rich.table import Table

        self.table = Table(title=title, title_justify="left", show_lines=False)
        for column in columns:
            self.table.add_column(column, overflow="fold")

    def add_row(self, *cells: str) -> None:
        from rich.text import Text

        self.table.add_row(*(Text.from_markup(c, emoji=False) for c in cells))

    def __rich__(self) -> Any:
        return self.table


_table = _Table


def render_advice(advice: Advice, console: Any, lang: str = "en") -> None:
    """The recommended values, one reason each, then the memory ladder and notes."""
    console.print(
        f"[bold]{_t('model', lang)}:[/] {advice.shape.describe(lang)}", highlight=False, emoji=False
    )
    console.print(
        f"[bold]{_t('hardware', lang)}:[/] {advice.hardware.describe(lang)}", highlight=False, emoji=False
    )
    facts = advice.facts
    if lang == "zh":
        data = f"训练 {facts.n_train} 条 / 验证 {facts.n_eval} 条"
        if facts.lengths:
            data += f"；token 数 p50 {facts.p(0.5)}、p95 {facts.p(0.95)}、p99 {facts.p(0.99)}、最大 {max(facts.lengths)}"
        data += f"；任务 {advice.task}"
    else:
        data = f"{facts.n_train} train / {facts.n_eval} eval records"
        if facts.lengths:
            data += f"; tokens p50 {facts.p(0.5)}, p95 {facts.p(0.95)}, p99 {facts.p(0.99)}, max {max(facts.lengths)}"
        data += f"; task {advice.task}"
    console.print(f"[bold]{_t('data', lang)}:[/] {data}", highlight=False, emoji=False)
    table = _table(_t("key", lang), _t("value", lang), _t("why", lang), title=_t("advice", lang))
    for item in advice.items:
        table.add_row(item.key, str(item.value), item.why(lang))
    console.print(table)
    if advice.lr is not None:
        render_lr_answer(advice.lr, console, lang)
    if advice.ladder:
        ladder = _table(_t("fix", lang), _t("peak", lang), _t("fits", lang), title=_t("ladder", lang))
        for step in advice.ladder:
            ladder.add_row(
                step.zh if lang == "zh" else step.en,
                fmt_bytes(step.peak),
                _t("yes" if step.fits else "no", lang),
            )
        console.print(ladder)
    for en, zh in advice.notes:
        console.print(
            f"[yellow]{_t('notes', lang)}:[/] {zh if lang == 'zh' else en}", highlight=False, emoji=False
        )


def _l(lang: str, en: str, zh: str) -> str:
    return zh if lang == "zh" else en


def render_estimate(report: EstimateReport, console: Any, lang: str = "en") -> None:
    """Memory breakdown, fit verdict, peak by micro-batch, measured peak and time per epoch."""
    mem, setup, hw = report.memory, report.setup, report.hardware

    def say(text: str) -> None:
        console.print(text, highlight=False, emoji=False)

    say(f"[bold]{_t('model', lang)}:[/] {report.shape.describe(lang)}")
    say(f"[bold]{_t('hardware', lang)}:[/] {hw.describe(lang)}")
    precision = "bf16/fp16 autocast" if setup.mixed else "fp32"
    quant = f", {setup.quantization_bit}-bit" if setup.quantization_bit else ""
    ckpt_on = setup.gradient_checkpointing
    say(
        _l(
            lang,
            f"[bold]run:[/] {setup.method}{quant}, {precision}, micro-batch {setup.micro_batch} x accumulation "
            f"{setup.grad_accum} x {report.world_size} device(s) = global batch {report.global_batch}, "
            f"sequence {setup.seq_len} = "
            f"{report.seq_len_source[0]}, {setup.optimizer}, gradient checkpointing {'on' if ckpt_on else 'off'}",
            f"[bold]训练设置:[/] {setup.method}{quant}，{precision}，微批 {setup.micro_batch} × 累积 "
            f"{setup.grad_accum} × {report.world_size} 个设备 = 全局批大小 {report.global_batch}，"
            f"序列长度 {setup.seq_len}（{report.seq_len_source[1]}），"
            f"{setup.optimizer}，梯度检查点{'开启' if ckpt_on else '关闭'}",
        )
    )
    table = _table(_t("item", lang), _t("memory", lang), _t("note", lang))
    share = 100 * mem.trainable_params / max(1, mem.total_params)
    tokens = f"{setup.micro_batch} x {setup.seq_len} tokens"
    table.add_row(
        _t("weights", lang),
        fmt_bytes(mem.weights),
        _l(lang, f"{mem.total_params:,} parameters", f"{mem.total_params:,} 个参数"),
    )
    table.add_row(_t("trainable", lang), "", f"{mem.trainable_params:,} ({share:.3g}%)")
    table.add_row(_t("gradients", lang), fmt_bytes(mem.gradients), "fp32")
    table.add_row(_t("states", lang), fmt_bytes(mem.optimizer_states), setup.optimizer)
    table.add_row(
        _t("activations", lang),
        fmt_bytes(mem.activations),
        _l(
            lang,
            f"{'with' if ckpt_on else 'without'} gradient checkpointing, {tokens}",
            f"梯度检查点{'开启' if ckpt_on else '关闭'}，{tokens}",
        ),
    )
    table.add_row(
        _t("loss", lang),
        fmt_bytes(mem.loss_peak),
        _l(
            lang,
            "fp32 log-softmax and its gradients over the vocabulary",
            "词表上的 fp32 log-softmax 及其梯度",
        ),
    )
    table.add_row(_t("temps", lang), fmt_bytes(mem.step_temporaries), "")
    phase = _l(
        lang,
        f"at the {mem.peak_phase}",
        "出现在" + ("反向传播" if mem.peak_phase == "backward" else "优化器步"),
    )
    table.add_row(f"[bold]{_t('total', lang)}[/]", f"[bold]{fmt_bytes(mem.peak)}[/]", phase)
    table.add_row(
        _t("eval", lang), fmt_bytes(report.eval_peak), f"per_device_eval_batch_size {report.eval_batch}"
    )
    table.add_row(_t("budget", lang), fmt_bytes(hw.budget_bytes), hw.source)
    console.print(table)
    if report.device is not None:
        _render_devices(report, console, lang)
    verdict = _t("verdict_fit" if report.fits else "verdict_nofit", lang)
    color = "green" if report.fits else "red"
    say(f"[bold {color}]{verdict}[/] ({fmt_bytes(report.peak)} / {fmt_bytes(hw.budget_bytes)})")
    if not report.eval_fits:
        say(
            f"[red]{_t('eval', lang)}: {_t('verdict_nofit', lang)}[/] — "
            + _l(lang, "lower per_device_eval_batch_size", "请降低 per_device_eval_batch_size")
        )
    if report.by_batch:
        rows = "  ".join(
            f"{b}: {fmt_bytes(peak)}{'' if peak <= hw.budget_bytes else ' ✗'}" for b, peak in report.by_batch
        )
        say(f"[bold]{_t('by_batch', lang)}:[/] {rows}")
    if report.measured_peak is not None:
        diff = 100 * (mem.peak / report.measured_peak - 1)
        say(
            f"[bold]{_t('measured', lang)}:[/] {fmt_bytes(report.measured_peak)} ({_l(lang, 'estimate', '估算偏差')} {diff:+.1f}%)"
        )
    if report.timing is not None:
        t = report.timing
        epoch = fmt_seconds(t.seconds_per_epoch)
        say(
            f"[bold]{_t('time', lang)}:[/] "
            + _l(
                lang,
                f"{t.seconds_per_micro_batch:.3f} s per micro-batch + {t.seconds_per_optimizer_step:.3f} s per optimizer "
                f"step, {t.tokens_per_second:,.0f} tokens/s ({t.device}, median of {t.n_measured} steps); "
                f"{t.optimizer_steps_per_epoch} steps per epoch -> {epoch} per epoch",
                f"每个微批 {t.seconds_per_micro_batch:.3f} 秒 + 每个优化步 {t.seconds_per_optimizer_step:.3f} 秒，"
                f"{t.tokens_per_second:,.0f} token/秒（{t.device}，{t.n_measured} 步的中位数）；每轮 "
                f"{t.optimizer_steps_per_epoch} 步，约 {epoch}",
            )
        )
    for en, zh in report.notes:
        say(f"[yellow]{_t('notes', lang)}:[/] {_l(lang, en, zh)}")


def _render_devices(report: EstimateReport, console: Any, lang: str) -> None:
    """Per-device memory of every engine at this world size; the configured one in bold."""
    assert report.device is not None
    title = _l(
        lang,
        f"per device, {report.world_size} device(s) (the table above is one unsharded process)",
        f"每个设备，共 {report.world_size} 个设备（上表为单个未切分的进程）",
    )
    table = _table(
        _l(lang, "engine", "引擎"),
        _l(lang, "model states", "模型状态"),
        _l(lang, "activations, loss, step scratch", "激活、损失、优化步临时内存"),
        _l(lang, "peak per device", "单设备峰值"),
        _l(lang, "CPU RAM per node", "每节点 CPU 内存"),
        title=title,
    )
    for m in report.engines:
        chosen = (m.stage, m.offload_optimizer) == (report.device.stage, report.device.offload_optimizer)
        mark = "[bold]" if chosen else ""
        end = "[/]" if chosen else ""
        over = "" if m.peak <= report.hardware.budget_bytes else " ✗"
        table.add_row(
            f"{mark}{m.label}{end}" + (_l(lang, " (this config)", "（本配置）") if chosen else ""),
            fmt_bytes(m.model_states),
            fmt_bytes(m.transient),
            f"{mark}{fmt_bytes(m.peak)}{end}{over}",
            fmt_bytes(m.cpu_bytes_per_node) if m.cpu_bytes_per_node else "",
        )
    console.print(table)


def render_find_batch(search: BatchSearch, console: Any, lang: str = "en") -> None:
    """Every probe with its outcome, then the answer."""
    table = _table(
        _l(lang, "split", "数据划分"), _t("micro", lang), _l(lang, "result", "结果"), _l(lang, "peak", "峰值")
    )
    for probe in search.probes:
        result = _l(lang, "ok", "通过") if probe.ok else f"[red]{_l(lang, 'out of memory', '内存不足')}[/]"
        table.add_row(probe.split, str(probe.batch), result, fmt_bytes(probe.peak) if probe.peak else "")
    console.print(table)
    zh = lang == "zh"
    console.print(
        (
            f"最长序列 {search.seq_len} 个 token；每设备训练微批 [bold]{search.train_batch}[/] × 累积 {search.accumulation} "
            f"× {search.devices} 设备 = 有效批大小 {search.effective_batch}（目标 {search.target_batch}）；"
            f"评估批大小 [bold]{search.eval_batch}[/]"
        )
        if zh
        else (
            f"worst-case sequence {search.seq_len} tokens; train micro-batch per device [bold]{search.train_batch}[/] x accumulation "
            f"{search.accumulation} x {search.devices} device(s) = effective batch {search.effective_batch} "
            f"(target {search.target_batch}); eval batch [bold]{search.eval_batch}[/]"
        ),
        highlight=False,
    )
    for en, zh in search.notes:
        console.print(f"[yellow]{_t('notes', lang)}:[/] {_l(lang, en, zh)}", highlight=False, emoji=False)


def render_lr_answer(answer: LrAnswer, console: Any, lang: str = "en", key: str = "lr_answer") -> None:
    """One line: the learning rate, its source, and every other source next to it."""
    from tunelab.tune.lr_answer import describe_answer

    console.print(f"[bold]{_t(key, lang)}:[/] {describe_answer(answer, lang)}", highlight=False, emoji=False)


def write_lr_answer(answer: LrAnswer, folder: Path) -> Path:
    """``folder``/lr_answer.json: the answer, its source and every source (what the web UI reads)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lr_answer.json"
    path.write_text(json.dumps(answer.as_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def render_lr_find(
    result: LRFindResult, console: Any, lang: str = "en", answer: LrAnswer | None = None
) -> None:
    """The suggestions and where the curve and data were written; with ``answer``, the suggestion's
    source and the recipe / combined / study learning rates next to it."""
    zh = lang == "zh"
    s = result.suggestions
    lines = (
        [
            f"学习率范围测试：{result.n_steps} 步，{result.lrs[0]:.1e} → {result.lrs[-1]:.1e}"
            + ("（损失发散，提前停止）" if result.diverged else ""),
            f"最陡下降点：{s['steepest']:.2e}；最小损失处：{s['minimum']:.2e}；最小损失/10：{s['min_div_10']:.2e}；"
            f"[bold]建议（来源：学习率范围测试）：{result.suggestion:.2e}[/]（最陡下降点与最小损失处学习率的几何平均）",
        ]
        if zh
        else [
            f"LR range test: {result.n_steps} steps, {result.lrs[0]:.1e} -> {result.lrs[-1]:.1e}"
            + (" (stopped: loss diverged)" if result.diverged else ""),
            f"steepest descent: {s['steepest']:.2e}; minimum: {s['minimum']:.2e}; minimum/10: {s['min_div_10']:.2e}; "
            f"[bold]suggestion (source: lr-find): {result.suggestion:.2e}[/] ({result.method})",
        ]
    )
    for line in lines:
        console.print(line, highlight=False, emoji=False)
    if answer is not None:
        render_lr_answer(answer, console, lang, "lr_with_recipe")
    for path in (result.plot_path, result.json_path):
        if path is not None:
            console.print(f"{_t('written', lang)}: {path}", highlight=False, emoji=False)
