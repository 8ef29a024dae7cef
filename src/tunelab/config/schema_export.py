"""Config group of `tunelab export` (LLaMA-Factory key names: export_dir, export_size, ...)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator, model_validator

from tunelab.config.fields import Group, field

__all__ = ["EXPORT_DTYPE_ALIASES", "ExportArgs"]

# LLaMA-Factory and transformers spell dtypes out; tunelab's compute_type uses the short names.
EXPORT_DTYPE_ALIASES = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float32": "fp32",
    "float": "fp32",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ExportArgs(Group):
    """Where and how `tunelab export` writes a stand-alone model (merged LoRA or a full model)."""

    export_dir: str | None = field(
        None,
        en="Directory of the exported model; default <run directory>/export.",
        zh="导出模型的目录；默认 <运行目录>/export。",
    )
    export_size: float = field(
        5.0,
        en="Largest weight-file shard in GB; bigger models are split with an index file.",
        zh="单个权重分片文件的最大体积（GB）；更大的模型会被切分并附带索引文件。",
        gt=0,
    )
    export_dtype: Literal["auto", "bf16", "fp16", "fp32"] = field(
        "auto",
        en="Dtype of the exported weights; auto keeps the base model's stored dtype.",
        zh="导出权重的数据类型；auto 保持基座模型原有的存储类型。",
    )
    export_device: Literal["cpu", "auto"] = field(
        "cpu",
        en="Where the model is loaded and merged for export: cpu, or auto = the CUDA GPU when there is one "
        "(else the CPU, with a note).",
        zh="导出时加载与合并模型所用的设备：cpu，或 auto = 有 CUDA GPU 时用 GPU（否则用 CPU 并给出提示）。",
    )
    export_legacy_format: bool = field(
        False,
        en="Write PyTorch .bin files instead of safetensors (only for old loaders that need them).",
        zh="写出 PyTorch .bin 文件而不是 safetensors（仅供需要它的旧加载器使用）。",
    )
    export_quantization_bit: Literal[2, 3, 4, 8] | None = field(
        None,
        en="Quantize the exported model to this many bits: 4 or 8 with bnb, 2, 3, 4 or 8 with gptq "
        "(see export_quantization_method).",
        zh="把导出的模型量化为该比特数：bnb 支持 4 或 8，gptq 支持 2、3、4 或 8（见 export_quantization_method）。",
    )
    export_quantization_method: Literal["bnb", "gptq"] = field(
        "gptq",
        en="How export_quantization_bit quantizes (default gptq, which is what LLaMA-Factory's export does): bnb = bitsandbytes as the weights load (needs a CUDA GPU, "
        "no data); gptq = GPTQ calibrated on export_quantization_dataset (needs `pip install optimum "
        "gptqmodel`; runs on CPU or GPU).",
        zh="export_quantization_bit 的量化方式：bnb = 加载权重时用 bitsandbytes 量化（需要 CUDA GPU，无需数据）；"
        "gptq = 用 export_quantization_dataset 校准的 GPTQ（需要 `pip install optimum gptqmodel`；CPU 或 GPU 均可）。",
    )
    export_quantization_dataset: str | None = field(
        None,
        en="Calibration data for gptq: a dataset name in dataset_dir's dataset_info.json (rendered with the "
        "chat template, prompt + response), or a .txt (one sample per non-empty line), .json or .jsonl file.",
        zh="gptq 的校准数据：dataset_dir 中 dataset_info.json 注册的数据集名（按对话模板渲染提示与回答），"
        "或 .txt（每个非空行一条样本）、.json、.jsonl 文件。",
    )
    export_quantization_nsamples: int = field(
        128,
        en="How many calibration samples gptq uses (a seeded random choice from export_quantization_dataset).",
        zh="gptq 使用的校准样本数（从 export_quantization_dataset 中按随机种子抽取）。",
        gt=0,
    )
    export_quantization_maxlen: int = field(
        1024,
        en="Longest calibration sample for gptq, in tokens; longer samples are cut.",
        zh="gptq 校准样本的最大长度（token 数）；更长的样本会被截断。",
        gt=0,
    )
    export_hub_model_id: str | None = field(
        None,
        en="Hugging Face Hub repo id (owner/name): the verified export is pushed there (needs HF_TOKEN "
        "and network; without them the export is kept and the error says how to push it later).",
        zh="Hugging Face Hub 仓库名（owner/name）：校验通过的导出会推送到这里（需要 HF_TOKEN 和网络；"
        "缺少时保留导出，并在错误信息中说明之后如何推送）。",
    )
    export_verify: bool = field(
        True,
        en="After export, reload the model with plain transformers and compare its logits with the "
        "source model's.",
        zh="导出后用原生 transformers 重新加载模型，并与源模型的 logits 对比。",
    )

    @field_validator("export_dtype", mode="before")
    @classmethod
    def _short_dtype(cls, value: object) -> object:
        return EXPORT_DTYPE_ALIASES.get(value, value) if isinstance(value, str) else value

    @field_validator("export_hub_model_id")
    @classmethod
    def _check_hub_id(cls, value: str | None) -> str | None:
        if value is not None and not _HUB_ID.match(value):
            raise ValueError(f"{value!r} is not a Hub repo id; write it as owner/name")
        return value

    @model_validator(mode="after")
    def _check_quantization(self) -> ExportArgs:
        """Every contradiction among the export_quantization_* keys at once, each with its fix."""
        problems = _quantization_problems(
            self.export_quantization_bit,
            self.export_quantization_method,
            self.export_quantization_dataset,
            method_set="export_quantization_method" in self.model_fields_set,
        )
        if self.export_quantization_bit is not None and self.export_legacy_format:
            problems.append(
                "export_quantization_bit cannot be written in the legacy .bin format; "
                "set export_legacy_format: false"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _quantization_problems(
    bits: int | None, method: str, dataset: str | None, *, method_set: bool
) -> list[str]:
    if bits is None:  # the method only matters when quantizing (gptq is the default, as in LLaMA-Factory)
        if dataset is not None:
            return [
                "export_quantization_dataset is set but export_quantization_bit is not: calibration data "
                "is only used by gptq quantization; set export_quantization_bit (e.g. 4) and "
                "export_quantization_method: gptq, or remove export_quantization_dataset"
            ]
        return []
    problems = []
    if method == "bnb":
        if bits not in (4, 8):
            problems.append(
                f"export_quantization_bit={bits} needs export_quantization_method: gptq "
                "(bitsandbytes writes 4 or 8 bits only); or set export_quantization_bit to 4 or 8"
            )
        if dataset is not None:
            problems.append(
                "export_quantization_dataset is only used by gptq, but export_quantization_method is bnb "
                "(which needs no calibration data); set export_quantization_method: gptq, "
                "or remove export_quantization_dataset"
            )
    elif dataset is None:
        problems.append(
            "export_quantization_method: gptq needs calibration data; set export_quantization_dataset to "
            "a dataset name from dataset_info.json (e.g. the one you trained on) or a .txt/.json/.jsonl file"
            + (
                ""
                if method_set
                else ", or export_quantization_method: bnb (4 or 8 bits on a CUDA GPU, no data)"
            )
        )
    return problems
