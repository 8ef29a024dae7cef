"""The ``lf`` variant of train_throughput.py: LLaMA-Factory's own ``run_exp`` in its own interpreter.

LLaMA-Factory pins its own transformers/peft, so it runs in the venv given by ``--lf-python`` with the
same model, builtin data (tunelab's dataset_info.json follows LLaMA-Factory's format), LoRA and
schedule keys. A small driver inside that interpreter stamps every optimizer step with torch's global
hook (as the in-process variants are timed) and, through a forward pre-hook on the model the Trainer
receives (added by a TrainerCallback), counts the non-padding tokens of every batch it sees
(attention_mask != 0, which covers neat_packing's segment ids, or the diagonal of its 4D
block-diagonal mask); it writes both to a JSON file that this side reads back.
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
import importlib.machinery, json, sys, time, types
try:
    import torchaudio  # noqa: F401
except (ImportError, OSError):
    # LLaMA-Factory imports torchaudio unconditionally (for audio inputs) and no torchaudio build
    # exists for every CPU torch; this text-only run never loads audio, so an empty module will do
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    sys.modules["torchaudio"].__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
from torch.optim.optimizer import register_optimizer_step_post_hook
from transformers import TrainerCallback

args, out = json.loads(sys.argv[1]), sys.argv[2]
stamps, tokens, state = [], [], {"pending": 0}

def on_step(*_):
    stamps.append(time.perf_counter())
    tokens.append(state["pending"])
    state["pending"] = 0

def on_forward(module, a, kw):
    if module.training and "input_ids" in kw:
        mask, ids = kw.get("attention_mask"), kw["input_ids"]
        if mask is None:
            state["pending"] += int(ids.numel())
        elif mask.dim() == 4:
            # neat_packing's 4D block-diagonal mask: a real token attends to itself, padding does not
            diag = mask[:, 0].diagonal(dim1=-2, dim2=-1)
            state["pending"] += int((diag == 0).sum()) if diag.is_floating_point() else int(diag.sum())
        else:
            state["pending"] += int((mask != 0).sum())
    return None

class CountTokens(TrainerCallback):
    # torch's global forward hook takes no kwargs: hook the model the trainer was given instead
    def on_train_begin(self, args_, state_, control, model=None, **kwargs):
        model.register_forward_pre_hook(on_forward, with_kwargs=True)

register_optimizer_step_post_hook(on_step)
from llamafactory.train.tuner import run_exp
run_exp(args, callbacks=[CountTokens()])
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
