"""Chinese renderings of tunelab's common errors, keyed by the error's ``code`` and filled from its ``params``.

The English message stays the one the raising code wrote (the CLI prints it); an error raised with a
``code`` listed here (see :class:`tunelab.errors.TunelabError`) can also be shown in Chinese, from the
same parameters, without matching the English text. Unknown codes, and English, give the error as raised.

    message, hint = render_error(exc, "zh")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tunelab.errors import TunelabError

__all__ = ["ZH_ERRORS", "render_error", "render_where"]

_DEEPSPEED_HINT = (
    "`pip install deepspeed`（或 `pip install 'tunelab[deepspeed]'`）；或改用 PyTorch FSDP 分片"
    "（fsdp: true，无需额外软件包）；或去掉 deepspeed，用 --nproc-per-node N 做数据并行训练"
)
_QLORA_HINT = "QLoRA（quantization_bit）需要 NVIDIA GPU 并 `pip install bitsandbytes`；在本机请删除 quantization_bit，改用普通 LoRA"
_EXPORT_QUANT_HINT = (
    "bnb 量化导出要在 NVIDIA GPU 上运行 bitsandbytes（`pip install bitsandbytes`）；在本机可用 "
    "export_quantization_method: gptq（CPU 可用），或去掉 export_quantization_bit 以 bf16/fp16 导出（export_dtype），"
    "或之后在 GPU 机器上量化"
)
# pydantic error type -> what the value must be
_VALUE_RULES = {
    "greater_than": "须大于 {gt}",
    "greater_than_equal": "须大于等于 {ge}",
    "less_than": "须小于 {lt}",
    "less_than_equal": "须小于等于 {le}",
    "literal_error": "不是允许的取值",
    "enum": "不是允许的取值",
    "int_parsing": "须为整数",
    "int_type": "须为整数",
    "int_from_float": "须为整数",
    "float_parsing": "须为数字",
    "float_type": "须为数字",
    "bool_parsing": "须为 true 或 false",
    "bool_type": "须为 true 或 false",
    "string_type": "须为字符串",
    "list_type": "须为列表",
    "dict_type": "须为映射（key: value）",
    "model_type": "须为映射（key: value）",
}
_BOUND_HINTS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_SOURCES = {
    "web UI form": "Web UI 表单",
    "web UI evaluate": "Web UI 评估页",
    "web UI export": "Web UI 导出页",
    "command line": "命令行",
}


def _bad_value(p: dict[str, Any]) -> tuple[str, str]:
    ctx = p.get("ctx") or {}
    rule = _VALUE_RULES.get(str(p.get("type")))
    reason = rule.format(**ctx) if rule else f"取值无效（{p.get('detail', '')}）"
    if "expected" in ctx:
        hint = f"允许的取值：{ctx['expected']}"
    else:
        hint = next((f"请使用 {sign} {ctx[b]} 的值" for b, sign in _BOUND_HINTS.items() if b in ctx), "")
    return f"{p['key']}={p['value']}：{reason}", hint


def _unknown_key(p: dict[str, Any]) -> tuple[str, str]:
    if p.get("close"):
        hint = f"是否想写 '{p['close']}'？"
    else:
        hint = "" if p.get("nested") else "`tunelab train --help-keys` 会列出所有配置键"
    return f"未知的配置键 '{p['key']}'", hint


def _unknown_dataset(p: dict[str, Any]) -> tuple[str, str]:
    close = p.get("close") or []
    guess = f"；是否想写 {' 或 '.join(repr(c) for c in close)}？" if close else ""
    loadable = ", ".join(p.get("loadable") or []) or "（无）"
    return (
        f"{p['registry']} 中没有数据集 '{p['name']}'{guess}",
        f"可从该处加载的数据集：{loadable}；也可以直接给出数据文件路径，或为它添加一条登记",
    )


def _output_dir_exists(p: dict[str, Any]) -> tuple[str, str]:
    held = "一次已完成的训练" if p.get("finished") else f"检查点（最新为 {p.get('checkpoint')}）"
    return (
        f"输出目录 {p['path']} 中已有{held}",
        "用 resume_from_checkpoint=auto 继续训练、换一个 output_dir，或设置 overwrite_output_dir=true 从头开始",
    )


def _fixed(message: str, hint: str = "") -> Callable[[dict[str, Any]], tuple[str, str]]:
    return lambda p: (message.format(**p), hint.format(**p))


# code -> params -> (message, hint) in Chinese
ZH_ERRORS: dict[str, Callable[[dict[str, Any]], tuple[str, str]]] = {
    "unknown_key": _unknown_key,
    "unsupported_key": _fixed(
        "'{key}' 是 {owner} 的选项（{meaning}）；tunelab（暂）不支持；替代方案：{alternative}",
        "删除该键，或改用替代方案",
    ),
    "multimodal_key": _fixed(
        "'{key}' 是 LLaMA-Factory 中多模态模型的选项；tunelab 只训练纯文本模型",
        "删除该键（以及图像/视频/音频列）；多模态训练请使用 LLaMA-Factory",
    ),
    "model_required": _fixed(
        "必须设置 model_name_or_path", "设为本地模型目录、.gguf 文件、'smollm2' 或 'tiny:llama'"
    ),
    "bad_value": _bad_value,
    "no_train_dataset": _fixed(
        "训练需要数据集，但 'dataset' 为空",
        "设置 dataset：dataset_dir/dataset_info.json 中登记的名称，或数据文件路径",
    ),
    "no_eval_data": _fixed(
        "没有可评估的数据：dataset、eval_dataset 和 task 均为空",
        "设置 eval_dataset=<名称>、dataset=<名称>（配合 val_size），或 task=<基准名>",
    ),
    "unknown_dataset": _unknown_dataset,
    "dataset_no_registry": _fixed(
        "数据集 '{name}' 既不是数据文件也未登记：{registry} 不存在",
        "把 dataset_dir 设为包含 dataset_info.json 的文件夹（或 'builtin'），或给出 {suffixes} 文件的路径",
    ),
    "output_dir_exists": _output_dir_exists,
    "qlora_needs_cuda": _fixed("设置了 quantization_bit，但本机没有 CUDA GPU", _QLORA_HINT),
    "qlora_needs_package": _fixed("设置了 quantization_bit，但未安装 {package} 软件包", _QLORA_HINT),
    "fp16_needs_cuda": _fixed(
        "compute_type=fp16 需要 CUDA GPU；在 CPU 上用 fp16 训练又慢又不稳定",
        "设置 compute_type: bf16（在支持 AMX/AVX512-BF16 的 CPU 上很快）或 compute_type: fp32",
    ),
    "fa2_unavailable": lambda p: (
        "flash_attn=fa2 需要"
        + ("CUDA GPU" if p.get("missing") == "cuda" else " flash-attn 软件包（>= 2.3.3）")
        + "，本机没有",
        "在 NVIDIA GPU 上：`pip install flash-attn --no-build-isolation`；否则设置 flash_attn: auto（sdpa）",
    ),
    "deepspeed_not_installed": _fixed("设置了 deepspeed，但未安装 deepspeed 软件包", _DEEPSPEED_HINT),
    "export_quant_needs_cuda": _fixed(
        "export_quantization_bit={bits} 需要 CUDA GPU，本机没有", _EXPORT_QUANT_HINT
    ),
    "export_quant_needs_package": _fixed(
        "export_quantization_bit={bits} 需要 {package} 软件包，但未安装", _EXPORT_QUANT_HINT
    ),
    # the web UI's own checks
    "path_outside": _fixed(
        "{key}={path}：不在此 Web UI 允许使用的文件夹内",
        "请使用以下文件夹内的路径：{roots}（启动时加 `tunelab webui --allow DIR` 可添加文件夹）",
    ),
    "not_a_number": _fixed("{what}：{shown} 不是数字", "请输入数字，或留空"),
    "offload_needs_preset": _fixed("卸载到 CPU 需要 DeepSpeed 预设", "在设备设置中选择 deepspeed z2 或 z3"),
    "z0_no_offload": _fixed("ZeRO 0 阶段不支持卸载", "选择 z2 或 z3 并勾选卸载"),
    "bad_process_count": _fixed("每节点进程数和节点数都至少为 1", "例如 2 个进程、1 个节点"),
}


def render_where(where: str, lang: str) -> str:
    """A problem's place ('command line', '<file> line N', a source name) in ``lang``."""
    if lang != "zh":
        return where
    source, sep, line = where.rpartition(" line ")
    if sep and line.isdigit():
        return f"{_SOURCES.get(source, source)} 第 {line} 行"
    return _SOURCES.get(where, where)


def render_error(exc: TunelabError, lang: str) -> tuple[str, str]:
    """(message, hint) of ``exc`` in ``lang``: Chinese for a code in ZH_ERRORS, else as raised."""
    if lang != "zh":
        return exc.message, exc.hint
    if exc.code == "config_problems" and exc.problems:
        rows = [(render_where(w, lang), *render_error(e, lang)) for w, e in exc.problems]
        source = _SOURCES.get(str(exc.params.get("source")), exc.params.get("source"))
        lines = [f"{source} 中有 {len(rows)} 个问题："]
        for where, message, hint in rows:
            lines.append(f"  {where}：{message}" + (f"\n      解决办法：{hint}" if hint else ""))
        hints = {h for _, _, h in rows if h}
        hint = hints.pop() if len(hints) == 1 else "逐条修改上面各行；`tunelab check CFG` 可再次列出它们"
        return "\n".join(lines), hint
    renderer = ZH_ERRORS.get(exc.code)
    if renderer is None:
        return exc.message, exc.hint
    try:
        return renderer(exc.params)
    except (KeyError, IndexError, ValueError):  # params of another version: the English text still says it
        return exc.message, exc.hint
