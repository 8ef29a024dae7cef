"""LLaMA-Factory's (and HF TrainingArguments') defaults for the keys tunelab shares, and why some differ.

tunelab takes LLaMA-Factory's default wherever there is no measured reason not to; each exception is
in ``DEFAULT_REASONS`` (listed in the README, kept in step by a test), and ``--print-config`` marks
every value left at a default that LLaMA-Factory would set differently. No torch import here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_REASONS", "LF_DEFAULTS", "lf_default_notes"]

# key -> default in LLaMA-Factory (src/llamafactory/hparams) or, for TrainingArguments keys, in
# transformers 5, written in tunelab's spelling (e.g. quantization_method bitsandbytes -> bnb)
LF_DEFAULTS: dict[str, Any] = {
    # model
    "adapter_name_or_path": None, "trust_remote_code": False, "flash_attn": "auto", "quantization_bit": None,
    "quantization_method": "bnb", "double_quantization": True, "rope_scaling": None, "cache_dir": None,
    # data
    "dataset": None, "eval_dataset": None, "dataset_dir": "data", "template": None, "cutoff_len": 2048,
    "max_samples": None, "val_size": 0.0, "train_on_prompt": False, "mask_history": False, "packing": False,
    "mix_strategy": "concat", "interleave_probs": None, "tool_format": None, "default_system": None,
    "overwrite_cache": False, "preprocessing_num_workers": None, "tokenized_path": None,
    # finetuning
    "stage": "sft", "finetuning_type": "lora", "lora_rank": 8, "lora_alpha": None, "lora_dropout": 0.0,
    "lora_target": ["all"], "additional_target": None, "use_rslora": False, "use_dora": False,
    "pissa_init": False, "pissa_iter": 16, "loraplus_lr_ratio": None, "freeze_trainable_layers": 2,
    "freeze_trainable_modules": ["all"], "freeze_extra_modules": None,
    # preference
    "pref_beta": 0.1, "pref_loss": "sigmoid", "pref_ftx": 0.0, "simpo_gamma": 0.5, "dpo_label_smoothing": 0.0,
    "kto_chosen_weight": 1.0, "kto_rejected_weight": 1.0, "reward_model": None, "ppo_epochs": 4,
    "ppo_buffer_size": 1, "ppo_target": 6.0, "ppo_score_norm": False, "ppo_whiten_rewards": False,
    # generation
    "do_sample": True, "temperature": 0.95, "top_p": 0.7, "top_k": 50, "num_beams": 1, "max_new_tokens": 1024,
    "repetition_penalty": 1.0,
    # training (HF TrainingArguments)
    "learning_rate": 5e-5, "num_train_epochs": 3.0, "max_steps": -1, "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8, "gradient_accumulation_steps": 1, "lr_scheduler_type": "linear",
    "warmup_ratio": 0.0, "warmup_steps": 0, "weight_decay": 0.0, "max_grad_norm": 1.0,
    "optim": "adamw_torch_fused", "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8, "bf16": False,
    "fp16": False, "gradient_checkpointing": True, "seed": 42, "eval_strategy": "no", "eval_steps": None,
    "metric_for_best_model": None, "greater_is_better": None, "load_best_model_at_end": False,
    "neftune_noise_alpha": None, "resume_from_checkpoint": None, "dataloader_num_workers": 0,
    "do_train": False, "do_eval": False, "do_predict": False, "ddp_timeout": 1800,
    "predict_with_generate": False, "output_dir": None, "overwrite_output_dir": False, "logging_steps": 500,
    "save_strategy": "steps", "save_steps": 500, "save_total_limit": None, "save_only_model": False,
    "plot_loss": False, "report_to": ["none"], "disable_tqdm": False, "run_name": None,
    # export
    "export_dir": None, "export_size": 5.0, "export_device": "cpu", "export_legacy_format": False,
    "export_quantization_bit": None, "export_quantization_method": "gptq", "export_quantization_dataset": None,
    "export_quantization_nsamples": 128, "export_quantization_maxlen": 1024, "export_hub_model_id": None,
    # eval (LLaMA-Factory's eval layout)
    "task": None, "task_dir": "evaluation", "n_shot": 5, "lang": "en", "save_dir": None,
}  # fmt: skip

# key -> why tunelab's default differs from LLaMA-Factory's (README "Defaults that differ")
DEFAULT_REASONS: dict[str, str] = {
    "learning_rate": "1e-4 is the LoRA rate of LLaMA-Factory's own examples (HF's 5e-5 is a full fine-tuning "
    "rate); `tunelab advise` recommends one for the setup",
    "per_device_train_batch_size": "4 fits small machines; `tunelab find-batch` measures the largest that fits",
    "lr_scheduler_type": "cosine is what LLaMA-Factory's examples use",
    "optim": "the same AdamW update; the unfused kernel is the portable choice on CPU-only machines",
    "gradient_checkpointing": "recomputing activations costs ~30% speed; `tunelab advise` turns it on when "
    "the memory estimate says the run does not fit (where memory is plentiful it only slows the run)",
    "metric_for_best_model": "eval_loss, so that checkpoints are ranked even when unset",
    "do_train": "unset means train unless do_eval/do_predict is set, which is what LLaMA-Factory's "
    "train and predict configs mean",
    "logging_steps": "10, as in LLaMA-Factory's examples: trainer_log.jsonl and the plots need rows",
    "plot_loss": "plots are part of every run directory",
    "task_dir": "builtin: tunelab's bundled benchmarks, no download",
    "lang": "auto picks the prompt language from each subject's text",
}


def lf_default_notes(values: dict[str, Any], user_set: set[str]) -> dict[str, str]:
    """key -> '# LLaMA-Factory default: X' for values left at a tunelab default that LF sets differently."""
    notes = {}
    for key, value in values.items():
        if key in LF_DEFAULTS and key not in user_set and not _same(value, LF_DEFAULTS[key]):
            notes[key] = f"LLaMA-Factory default: {_show(LF_DEFAULTS[key])}"
    return notes


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)
