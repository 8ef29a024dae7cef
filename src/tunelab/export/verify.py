"""Check an export: it loads with plain transformers, and its logits match the source model's.

The source ("reference") is the model as trained, adapters unmerged, in fp32. The export is loaded
back with nothing but `AutoModelForCausalLM.from_pretrained` and run in fp32 too, so the difference
measured is what the export changed (merge arithmetic, rounding the weights to the export dtype),
not arithmetic noise of a low-precision forward pass. The tolerance scales with the largest logit
and with the export dtype's rounding step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["VerifyResult", "logit_tolerance", "verification_prompts", "verify_export"]

# Relative tolerance per export dtype: a few rounding steps of the dtype's mantissa (fp32 2^-23,
# fp16 2^-10, bf16 2^-7), accumulated over the layers. Quantized exports are only checked loosely
# (for 2/3-bit GPTQ the share of positions with the same next token says more than the tolerance).
_RELATIVE_TOLERANCE = {
    "fp32": 1e-4,
    "fp16": 1e-2,
    "bf16": 5e-2,
    "8bit": 0.25,
    "4bit": 0.5,
    "3bit": 0.75,
    "2bit": 1.0,
}

_QUESTIONS = (
    "Explain in one sentence what a learning rate is.",
    "用一句话介绍你自己。",
    "List three colours.",
)
_PLAIN_TEXT = "The quick brown fox jumps over the lazy dog. 敏捷的棕色狐狸跳过了懒狗。"


@dataclass(frozen=True)
class VerifyResult:
    """How closely the exported model reproduces the source model."""

    passed: bool
    max_abs_diff: float
    tolerance: float
    max_abs_logit: float
    argmax_agreement: float  # share of positions where both models pick the same next token
    n_inputs: int
    n_positions: int
    loaded_with: str  # how the export was loaded, for the report

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        return (
            f"verification {verdict}: max |logit difference| = {self.max_abs_diff:.3g} "
            f"(tolerance {self.tolerance:.3g}, largest |logit| {self.max_abs_logit:.3g}) over "
            f"{self.n_positions} positions of {self.n_inputs} inputs; "
            f"same next token at {100 * self.argmax_agreement:.1f}% of positions"
        )


def logit_tolerance(precision: str, max_abs_logit: float) -> float:
    """The largest logit difference accepted for an export in `precision` (a dtype name or '8bit'/'4bit')."""
    return _RELATIVE_TOLERANCE[precision] * max(max_abs_logit, 1.0)


def verification_prompts(tokenizer: Any, template: Any) -> list[list[int]]:
    """Token ids of a few fixed inputs: chat prompts in the run's template, plus plain text."""
    prompts = [
        template.encode_prompt(tokenizer, [{"role": "user", "content": q}], "", "") for q in _QUESTIONS
    ]
    prompts.append(list(tokenizer.encode(_PLAIN_TEXT, add_special_tokens=True)))
    return [p for p in prompts if p]


def _logits(model: Any, ids: Sequence[int]) -> Any:
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([list(ids)], device=device))
    return out.logits[0].float().cpu()


def verify_export(
    export_dir: Path,
    reference: Any,
    inputs: Sequence[Sequence[int]],
    *,
    precision: str,
    quantized_device: str | int = 0,
) -> VerifyResult:
    """Load `export_dir` with plain transformers and compare its logits with `reference` on `inputs`.

    A quantized export loads on `quantized_device` (bitsandbytes: the GPU; GPTQ: where it was made).
    """
    import torch
    from transformers import AutoModelForCausalLM

    quantized = precision.endswith("bit")
    kwargs: dict[str, Any] = {"device_map": {"": quantized_device}} if quantized else {"dtype": torch.float32}
    exported = AutoModelForCausalLM.from_pretrained(export_dir, **kwargs).eval()
    loaded_with = f"AutoModelForCausalLM.from_pretrained({str(export_dir)!r}, {', '.join(f'{k}={v}' for k, v in kwargs.items())})"

    max_diff, max_logit, agree, positions = 0.0, 0.0, 0, 0
    for ids in inputs:
        ref = _logits(reference, ids)
        got = _logits(exported, ids)
        max_diff = max(max_diff, float((ref - got).abs().max()))
        max_logit = max(max_logit, float(ref.abs().max()))
        agree += int((ref.argmax(-1) == got.argmax(-1)).sum())
        positions += ref.shape[0]
    del exported
    tolerance = logit_tolerance(precision, max_logit)
    return VerifyResult(
        passed=max_diff <= tolerance,
        max_abs_diff=max_diff,
        tolerance=tolerance,
        max_abs_logit=max_logit,
        argmax_agreement=agree / max(positions, 1),
        n_inputs=len(inputs),
        n_positions=positions,
        loaded_with=loaded_with,
    )
