"""The ``lf`` variant of train_throughput.py: LLaMA-Factory's own ``run_exp`` in its own interpreter.

LLaMA-Factory pins its own transformers/peft, so it runs in the venv given by ``--lf-python`` with the
same model, builtin data (tunelab's dataset_info.json follows LLaMA-Factory's format), LoRA and
schedule keys. A small driver inside that interpreter stamps every optimizer step with torch's global
hook (as the in-process variants are timed) and counts the non-padding tokens of every batch the
trainer's model receives (attention_mask != 0, which covers neat_packing's segment ids); it writes
both to a JSON file that this side reads back.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "src" / "tunelab" / "resources" / "data"

DRIVER = r"""
import json, sys, time
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.nn.modules.module import register_module_forward_pre_hook

args, out = json.loads(sys.argv[1]), sys.argv[2]
stamps, tokens, state = [], [], {"top": None, "pending": 0}

def on_step(*_):
    stamps.append(time.perf_counter())
    tokens.append(state["pending"])
    state["pending"] = 0

def on_forward(module, a, kw):
    if not module.training or "input_ids" not in kw:
        return None
    if state["top"] is None:
        state["top"] = id(module)
    if id(module) == state["top"]:
        mask = kw.get("attention_mask")
        ids = kw["input_ids"]
        state["pending"] += int((mask != 0).sum()) if mask is not None else int(ids.numel())
    return None

register_optimizer_step_post_hook(on_step)
register_module_forward_pre_hook(on_forward, with_kwargs=True)
from llamafactory.train.tuner import run_exp
run_exp(args)
json.dump({"stamps": stamps, "tokens": tokens}, open(out, "w"))
"""


def lf_arguments(
    args: argparse.Namespace, model_path: Path, output_dir: Path, packed: bool
) -> dict[str, Any]:
    """LLaMA-Factory keys for the same run as the tunelab variants (fp32, LoRA r=8 on all linear layers)."""
    return {
        "model_name_or_path": str(model_path),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": 8,
        "lora_target": "all",
        "dataset": args.dataset,
        "dataset_dir": str(DATA_DIR),
        "template": "qwen",  # ChatML, like tunelab's chatml template
        "cutoff_len": args.cutoff,
        "packing": False,
        "neat_packing": packed,
        "per_device_train_batch_size": args.batch,
        "max_steps": args.warmup + args.steps,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.1,
        "logging_steps": args.logging_steps,
        "save_strategy": "no",
        "report_to": "none",
        "bf16": False,
        "output_dir": str(output_dir),
        "overwrite_output_dir": True,
        "disable_tqdm": True,
    }


def lf_runner(args: argparse.Namespace) -> Any:
    """A variant runner: (note, step stamps, window tokens) from one LLaMA-Factory run."""

    def run(setup: Any, output_dir: Path) -> tuple[str, list[float], int]:
        result = output_dir / "lf_stamps.json"
        keys = lf_arguments(args, setup.model_path, output_dir / "lf", setup.packed)
        subprocess.run(
            [args.lf_python, "-c", DRIVER, json.dumps(keys), str(result)], check=True, cwd=output_dir
        )
        data = json.loads(result.read_text())
        window = sum(data["tokens"][setup.warmup : setup.warmup + setup.steps])
        return f"lf: {window:,} non-padding tokens in its window (its own template)", data["stamps"], window

    return run
