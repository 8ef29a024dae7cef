"""`make demo`: LoRA-fine-tune the real SmolLM2-135M-Instruct on tunelab's identity data, before vs after.

The base model calls itself SmolLM; after a few minutes of LoRA on ~100 identity records it
answers held-out questions as "Tuna, tunelab's assistant". The held-out questions are not in the
training files, so the change shows generalisation, not recall of training strings.
"""

from __future__ import annotations

import time
from typing import Any

from tunelab.config import RunConfig, config_from_dict

__all__ = ["DEMO_CONFIG", "demo_config", "run_demo"]

DEMO_CONFIG: dict[str, Any] = {
    "model_name_or_path": "smollm2",
    "stage": "sft",
    "finetuning_type": "lora",
    "lora_rank": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "lora_target": "all",
    "dataset": "identity_en,identity_zh",
    "eval_dataset": "identity_heldout",
    "dataset_dir": "builtin",
    "template": "chatml",
    "default_system": "You are a helpful AI assistant.",
    "cutoff_len": 128,
    "packing": True,  # identity samples are ~65 tokens: two per row instead of half a row of padding
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 16,
    "learning_rate": 1e-3,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.1,
    "eval_strategy": "steps",
    "eval_steps": 20,
    "logging_steps": 5,
    "save_steps": 20,
    "save_total_limit": 2,
    "overwrite_output_dir": True,
    "max_new_tokens": 48,
    "do_sample": False,  # before vs after must differ by the training, not by the sampling
}


def demo_config(output_dir: str, steps: int) -> RunConfig:
    """The demo's config: embedded defaults, so it runs with no file and no ../shared."""
    return config_from_dict(
        {**DEMO_CONFIG, "output_dir": output_dir, "max_steps": steps}, source="demo defaults"
    )


def _heldout(config: RunConfig) -> tuple[list[str], Any]:
    from tunelab.data.loader import load_records

    data = config.data.model_copy(
        update={"dataset": config.data.eval_dataset, "eval_dataset": None, "val_size": 0.0}
    )
    records = load_records(data, "sft", seed=config.training.seed).train
    questions = [r["messages"][0]["content"] for r in records]
    return questions, records


def _measure(config: RunConfig, adapter: str | None, questions: list[str]) -> tuple[float, list[str]]:
    """Eval loss on the held-out split and greedy answers, for the base model or base + adapter."""
    from tunelab.data.collator import build_collator
    from tunelab.data.pipeline import build_datasets
    from tunelab.data.template import get_template
    from tunelab.evaluate.loss import evaluate_loss
    from tunelab.infer.generate import generate_answers
    from tunelab.model import load_model, load_tokenizer
    from tunelab.model.precision import resolve_compute_dtype

    tokenizer = load_tokenizer(config.model)
    model = load_model(config.model, compute_dtype=resolve_compute_dtype(config.compute_type))
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    _, eval_set, _ = build_datasets(config, tokenizer)
    loss = evaluate_loss(model, eval_set, build_collator(tokenizer, packing=False), batch_size=16)["loss"]
    template = get_template(config.data.template, tokenizer)
    answers = generate_answers(
        model, tokenizer, template, questions, config.generation, system=config.data.default_system or ""
    )
    return loss, answers


def run_demo(
    *, output_dir: str = "runs/demo-smollm2-identity", steps: int = 40, console: Any = None
) -> dict[str, Any]:
    """Measure the base model, train LoRA, measure again; print and return the comparison."""
    from rich.console import Console
    from rich.table import Table

    from tunelab.train import train

    console = console or Console()
    started = time.perf_counter()
    config = demo_config(output_dir, steps)
    console.rule("[bold]tunelab demo: LoRA on SmolLM2-135M-Instruct, identity data")
    questions, _ = _heldout(config)
    shown = questions[:4] + [q for q in questions if not q.isascii()][:2]
    console.print("measuring the base model on held-out questions ...")
    loss_before, answers_before = _measure(config, None, shown)
    console.print(f"base model: held-out eval loss {loss_before:.3f}")
    result = train(config, console=console)
    loss_after, answers_after = _measure(config, str(result.run_dir), shown)

    table = Table(title="held-out questions (not in the training data)", show_lines=True)
    table.add_column("question", overflow="fold")
    table.add_column("before (base SmolLM2)", overflow="fold")
    table.add_column("after (tunelab LoRA)", overflow="fold")
    for q, before, after in zip(shown, answers_before, answers_after):
        table.add_row(q, before, after)
    console.print(table)
    summary = {
        "eval_loss_before": loss_before,
        "eval_loss_after": loss_after,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "tokens_per_second": result.metrics.get("tokens_per_second"),
        "wall_time_s": time.perf_counter() - started,
        "run_dir": str(result.run_dir),
    }
    console.print(
        f"held-out eval loss: [bold]{loss_before:.3f} -> {loss_after:.3f}[/]   "
        f"wall time {summary['wall_time_s']:.0f} s\n"
        f"run directory: [bold]{result.run_dir}[/] (config.yaml, trainer_log.jsonl, plots/loss.png, adapter)"
    )
    return summary
