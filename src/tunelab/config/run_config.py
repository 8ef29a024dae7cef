"""RunConfig: every group of a run in one validated object, built from flat LLaMA-Factory-style keys."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from tunelab.config.control import NESTED_GROUP_TYPES, EarlyStoppingArgs, HealthArgs
from tunelab.config.engines import shards_parameters
from tunelab.config.rules import ConfigProblems
from tunelab.config.schema import (
    GROUP_TYPES,
    DataArgs,
    EvalArgs,
    ExportArgs,
    FinetuningArgs,
    GenerationArgs,
    KDArgs,
    ModelArgs,
    OutputArgs,
    PreferenceArgs,
    TrainingArgs,
)
from tunelab.config.schema_methods import optimizer_problems
from tunelab.config.schema_tune import TuneArgs
from tunelab.config.streaming_rules import streaming_problems

__all__ = ["KEY_TO_GROUP", "RunConfig", "all_keys", "nested_keys"]


def _index_keys() -> dict[str, str]:
    index: dict[str, str] = {name: name for name in NESTED_GROUP_TYPES}  # health: {...}
    for group, model in GROUP_TYPES.items():
        for key in model.model_fields:
            if key in index:  # the flat YAML namespace would be ambiguous
                raise RuntimeError(f"config key {key!r} is defined in {index[key]} and {group}")
            index[key] = group
    return index


KEY_TO_GROUP: dict[str, str] = _index_keys()


def all_keys() -> list[str]:
    """Every top-level key a config file may use (flat keys, then the nested group names)."""
    return list(KEY_TO_GROUP)


def nested_keys() -> list[str]:
    """Every dotted key of the nested groups, e.g. health.grad_norm_alarm."""
    return [f"{group}.{name}" for group, model in NESTED_GROUP_TYPES.items() for name in model.model_fields]


class RunConfig(BaseModel):
    """A validated run config: one attribute per group, keys flat in YAML."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: ModelArgs
    data: DataArgs = DataArgs()
    finetuning: FinetuningArgs = FinetuningArgs()
    training: TrainingArgs = TrainingArgs()
    generation: GenerationArgs = GenerationArgs()
    output: OutputArgs = OutputArgs()
    export: ExportArgs = ExportArgs()
    eval: EvalArgs = EvalArgs()
    preference: PreferenceArgs = PreferenceArgs()
    kd: KDArgs = KDArgs()
    health: HealthArgs = HealthArgs()
    early_stopping: EarlyStoppingArgs = EarlyStoppingArgs()
    tune: TuneArgs = TuneArgs()

    @model_validator(mode="after")
    def _check_across_groups(self) -> RunConfig:
        """Rules that span groups, checked once where the config is built."""
        problems: list[str] = []
        t, m = self.training, self.model
        if t.bf16 and m.compute_type not in ("auto", "bf16"):
            problems.append(f"bf16: true contradicts compute_type: {m.compute_type}")
        if t.fp16 and m.compute_type not in ("auto", "fp16"):
            problems.append(f"fp16: true contradicts compute_type: {m.compute_type}")
        if m.quantization_bit is not None and self.finetuning.finetuning_type != "lora":
            problems.append(
                f"quantization_bit={m.quantization_bit} needs finetuning_type: lora "
                f"(quantized weights cannot be trained directly; got {self.finetuning.finetuning_type})"
            )
        if m.quantization_bit == 8 and shards_parameters(t.deepspeed, t.fsdp):
            problems.append(
                "quantization_bit=8 cannot be sharded by FSDP or ZeRO-3 (bitsandbytes 8-bit weights do not "
                "flatten into shards); use quantization_bit: 4 (QLoRA), or DeepSpeed z2 / plain DDP"
            )
        f = self.finetuning
        if f.pure_bf16 and (t.fp16 or m.compute_type not in ("auto", "bf16")):
            asked = "fp16: true" if t.fp16 else f"compute_type: {m.compute_type}"
            problems.append(f"pure_bf16: true trains in bf16, but {asked}; drop one of them")
        problems.extend(optimizer_problems(f, t.optim, f.loraplus_lr_ratio, t.gradient_accumulation_steps))
        if m.shift_attn and self.data.packing:
            problems.append(
                "shift_attn groups positions of one sequence and cannot see packed samples; set packing: false"
            )
        if m.shift_attn and f.stage not in ("pt", "sft"):
            problems.append(f"shift_attn trains long contexts in stages pt and sft, not {f.stage}")
        if m.mixture_of_depths == "convert" and f.finetuning_type != "full":
            problems.append(
                f"mixture_of_depths: convert adds routers that start untrained and must train with the blocks; "
                f"finetuning_type {f.finetuning_type} would freeze them, so use finetuning_type: full"
            )
        if f.pissa_init and f.use_dora:
            problems.append("pissa_init and use_dora cannot be combined; choose one")
        problems += streaming_problems(self.data, t, f.stage)
        if f.stage == "ppo" and not self.preference.reward_model:
            problems.append(
                "stage: ppo needs reward_model: the run directory of a `stage: rm` run (train one first)"
            )
        problems += _kd_problems(self)
        if problems:
            raise ConfigProblems(problems)  # each reported on its own line by config.validate
        return self

    @model_validator(mode="after")
    def _fill_stage_defaults(self) -> RunConfig:
        """Stage cls splits one dataset 70/15/15 (train/val/test) unless the sizes or eval_dataset are set.

        Filled here, where the config is built, so config.yaml records the sizes actually used.
        """
        d = self.data
        if self.finetuning.class_weights != "none" and self.finetuning.stage != "cls":
            raise ValueError(
                f"class_weights={self.finetuning.class_weights} weights the classes of stage cls, "
                f"but stage is {self.finetuning.stage}; remove it or set stage: cls"
            )
        if self.finetuning.stage == "cls" and not d.eval_dataset:
            unset = {"val_size", "test_size"} - d.model_fields_set
            if unset:
                self.data = d.model_copy(update=dict.fromkeys(unset, 0.15))
        return self

    @property
    def compute_type(self) -> str:
        """The requested precision, folding the HF-style bf16/fp16 flags and pure_bf16 into compute_type."""
        if self.training.bf16 or self.finetuning.pure_bf16:
            return "bf16"
        if self.training.fp16:
            return "fp16"
        return self.model.compute_type

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> RunConfig:
        """Build from flat keys (unknown keys must be rejected by the caller first)."""
        grouped: dict[str, Any] = {g: {} for g in GROUP_TYPES}
        for key, value in flat.items():
            if key in NESTED_GROUP_TYPES:
                grouped[key] = value if value is not None else {}
            else:
                grouped[KEY_TO_GROUP[key]][key] = value
        return cls(**grouped)

    def to_flat(self) -> dict[str, Any]:
        """Flat key -> value, every default filled, in group order (what config.yaml stores)."""
        flat: dict[str, Any] = {}
        for group in GROUP_TYPES:
            flat.update(getattr(self, group).model_dump(mode="json"))
        for group in NESTED_GROUP_TYPES:
            flat[group] = getattr(self, group).model_dump(mode="json")
        return flat


def _kd_problems(config: RunConfig) -> list[str]:
    """What stage kd (and cls distillation) needs from the other groups, checked before anything loads."""
    kd, stage = config.kd, config.finetuning.stage
    problems = []
    if kd.kd_on_policy_ratio > 0 and stage != "kd":
        problems.append(
            f"kd_on_policy_ratio={kd.kd_on_policy_ratio} lets the student generate during stage kd, "
            f"but stage is {stage}; remove it or set stage: kd"
        )
    if stage == "cls" and (kd.teacher_model_name_or_path or kd.kd_teacher_cache):
        for key in ("teacher_adapter_name_or_path", "teacher_compute_type", "kd_topk", "kd_teacher_cache"):
            if getattr(kd, key) is not None:
                problems.append(
                    f"{key} is for stage kd; stage cls distils every class of the teacher cls run in "
                    f"teacher_model_name_or_path (its own adapter and labels, fp32); remove {key}"
                )
    if stage != "kd":
        return problems
    if not kd.teacher_model_name_or_path and not kd.kd_teacher_cache:
        problems.append(
            "stage: kd needs a teacher: teacher_model_name_or_path (a model, or a run directory), "
            "or kd_teacher_cache (written by `tunelab data teacher-logits`)"
        )
    if kd.kd_teacher_cache and kd.kd_on_policy_ratio > 0:
        problems.append(
            f"kd_on_policy_ratio={kd.kd_on_policy_ratio} needs a live teacher to score the tokens the student "
            "generates during training, but kd_teacher_cache only holds the teacher's log-probs of the "
            "dataset's own responses; set teacher_model_name_or_path instead of kd_teacher_cache, "
            "or kd_on_policy_ratio: 0"
        )
    if kd.kd_on_policy_ratio > 0 and config.data.train_on_prompt:
        problems.append(
            "kd_on_policy_ratio finds each prompt as the tokens before the supervised response, but "
            "train_on_prompt: true supervises the prompt too; set train_on_prompt: false"
        )
    if kd.kd_student_init and not kd.teacher_model_name_or_path:
        problems.append(
            f"kd_student_init={kd.kd_student_init} builds the student from the teacher's layers: "
            "set teacher_model_name_or_path (a teacher cache alone has no weights to copy)"
        )
    if config.data.packing:
        problems.append(
            "stage: kd does not pack samples (teacher logits are stored per sample); set packing: false"
        )
    return problems
