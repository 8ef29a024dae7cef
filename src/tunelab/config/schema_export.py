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
    export_legacy_format: bool = field(
        False,
        en="Write PyTorch .bin files instead of safetensors (only for old loaders that need them).",
        zh="写出 PyTorch .bin 文件而不是 safetensors（仅供需要它的旧加载器使用）。",
    )
    export_quantization_bit: Literal[4, 8] | None = field(
        None,
        en="Quantize the exported model to 4 or 8 bits with bitsandbytes; needs a CUDA GPU.",
        zh="用 bitsandbytes 把导出的模型量化为 4 或 8 比特；需要 CUDA GPU。",
    )
    export_hub_model_id: str | None = field(
        None,
        en="Hugging Face Hub repo id (owner/name) recorded in the model card for a later push; "
        "nothing is uploaded.",
        zh="记录在模型卡中的 Hugging Face Hub 仓库名（owner/name），供之后推送；不会上传任何内容。",
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
    def _check_format(self) -> ExportArgs:
        if self.export_quantization_bit is not None and self.export_legacy_format:
            raise ValueError(
                "export_quantization_bit cannot be written in the legacy .bin format; "
                "set export_legacy_format: false"
            )
        return self
