"""build_training_arguments: config -> TrainingArguments, settings that cannot work together, and
what the wiring does in a real Trainer (best checkpoint, NEFTune, precision, gradient checkpointing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import Trainer, TrainerCallback

from tunelab.config import RunConfig, config_from_dict
from tunelab.data.collator import build_collator
from tunelab.data.pipeline import build_datasets
from tunelab.errors import ConfigError, ResourceError
from tunelab.model import apply_finetuning, load_model, load_tokenizer
from tunelab.model.precision import choose_compute
from tunelab.runs import RunDir
from tunelab.train import train
from tunelab.train.builders import build_training_arguments

BASE: dict[str, Any] = {
    "stage": "sft",
    "finetuning_type": "lora",
    "lora_dropout": 0.0,
    "dataset": "instruct_en",
    "dataset_dir": "builtin",
    "template": "chatml",
    "cutoff_len": 128,
    "per_device_train_batch_size": 8,
    "learning_rate": 5e-3,
    "logging_steps": 1,
    "compute_type": "fp32",
    "plot_loss": False,
    "disable_tqdm": True,
}


def _config(model: str | Path = "tiny:llama", **overrides: Any) -> RunConfig:
    return config_from_dict({**BASE, "model_name_or_path": str(model), **overrides})


def _args(tmp_path: Path, dtype: torch.dtype = torch.float32, **overrides: Any):
    return build_training_arguments(_config(**overrides), tmp_path, dtype)


# --- mapping -------------------------------------------------------------------------------------


def test_eval_and_save_keys_reach_training_arguments(tmp_path: Path) -> None:
    args = _args(
        tmp_path,
        val_size=0.1,
        eval_strategy="steps",
        logging_steps=5,
        save_steps=10,
        save_total_limit=2,
        load_best_model_at_end=True,
        neftune_noise_alpha=5.0,
    )
    assert args.eval_strategy == "steps" and args.eval_steps == 5  # eval_steps defaults to logging_steps
    assert args.save_strategy == "steps" and args.save_steps == 10 and args.save_total_limit == 2
    assert args.metric_for_best_model == "eval_loss" and args.greater_is_better is False
    assert args.load_best_model_at_end and args.neftune_noise_alpha == 5.0
    assert args.do_eval and args.report_to == []

    epoch = _args(tmp_path, eval_dataset="identity_en", eval_strategy="epoch", save_strategy="epoch")
    assert epoch.eval_strategy == "epoch" and epoch.save_strategy == "epoch"
    higher = _args(tmp_path, val_size=0.1, eval_strategy="steps", greater_is_better=True)
    assert higher.greater_is_better is True
    quiet = _args(tmp_path)
    assert quiet.eval_strategy == "no" and quiet.metric_for_best_model is None and not quiet.do_eval
    # lr_scheduler_type values transformers lacks are built by TunelabTrainer; the args stay valid
    assert _args(tmp_path, lr_scheduler_type="step").max_steps == -1


@pytest.mark.parametrize(
    ("dtype", "bf16", "fp16"),
    [(torch.float32, False, False), (torch.bfloat16, True, False), (torch.float16, False, True)],
)
def test_precision_flags(tmp_path: Path, dtype: torch.dtype, bf16: bool, fp16: bool) -> None:
    """bf16/fp16 autocast follows the compute dtype; fp16 is what makes the Trainer scale the loss."""
    args = _args(tmp_path, dtype)
    assert (args.bf16, args.fp16) == (bf16, fp16)
    assert (
        args.mixed_precision
        == {(False, False): "no", (True, False): "bf16", (False, True): "fp16"}[(bf16, fp16)]
    )


def test_precision_choice() -> None:
    """auto picks bf16 only where it is fast; fp16 without a GPU is refused."""
    none: frozenset[str] = frozenset()
    assert choose_compute("auto", cuda_available=True, cuda_bf16=True, flags=none).name == "bf16"
    assert (
        choose_compute("auto", cuda_available=False, cuda_bf16=False, flags=frozenset({"amx_bf16"})).name
        == "bf16"
    )
    assert choose_compute("auto", cuda_available=False, cuda_bf16=False, flags=none).name == "fp32"
    assert choose_compute("fp16", cuda_available=True, cuda_bf16=False, flags=none).name == "fp16"
    with pytest.raises(ResourceError, match="fp16 needs a CUDA GPU"):
        choose_compute("fp16", cuda_available=False, cuda_bf16=False, flags=none)


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed on a GPU")
def test_fp16_on_cpu_fails_before_writing_anything(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(ResourceError, match="fp16"):
        train(_config(compute_type="fp16", output_dir=str(out)))
    assert not out.exists()


# --- settings that cannot work together ------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message", "hint"),
    [
        ({"eval_strategy": "steps"}, "eval_strategy=steps needs evaluation data", "val_size"),
        (
            {"load_best_model_at_end": True},
            "load_best_model_at_end=true needs evaluations",
            "eval_strategy=steps",
        ),
        (
            {"val_size": 0.1, "eval_strategy": "epoch", "load_best_model_at_end": True},
            "save_strategy=steps and eval_strategy=epoch",
            "save_strategy=epoch",
        ),
        (
            {
                "val_size": 0.1,
                "eval_strategy": "steps",
                "eval_steps": 4,
                "save_steps": 10,
                "load_best_model_at_end": True,
            },
            r"save_steps \(10\) to be a multiple of eval_steps \(4\)",
            "eval_steps=2 or save_steps=12",
        ),
        (
            {
                "val_size": 0.1,
                "eval_strategy": "steps",
                "logging_steps": 3,
                "save_steps": 10,
                "load_best_model_at_end": True,
            },
            r"eval_steps \(unset: logging_steps\) \(3\)",
            "eval_steps=2 or save_steps=12",
        ),
        (
            {"lr_scheduler_type": "reduce_lr_on_plateau"},
            "reduce_lr_on_plateau reacts to evaluations",
            "eval_strategy",
        ),
        (
            {"val_size": 0.1, "eval_strategy": "steps", "metric_for_best_model": "eval_accuracy"},
            "metric_for_best_model=eval_accuracy",
            "eval_loss",
        ),
    ],
)
def test_conflicting_settings_are_config_errors(
    tmp_path: Path, overrides: dict[str, Any], message: str, hint: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _args(tmp_path, **overrides)
    assert hint in info.value.hint


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _args(tmp_path, load_best_model_at_end=True, lr_scheduler_type="reduce_lr_on_plateau")
    assert "load_best_model_at_end" in info.value.message and "reduce_lr_on_plateau" in info.value.message


def test_empty_eval_split_is_a_config_error(tmp_path: Path) -> None:
    config = _config(val_size=0.1, eval_strategy="steps")
    with pytest.raises(ConfigError, match="evaluation split is empty"):
        build_training_arguments(config, tmp_path, torch.float32, has_eval_set=False)
    assert build_training_arguments(config, tmp_path, torch.float32, has_eval_set=True).do_eval


def test_aligned_best_model_settings_pass(tmp_path: Path) -> None:
    args = _args(
        tmp_path,
        val_size=0.1,
        eval_strategy="steps",
        eval_steps=5,
        save_steps=10,
        load_best_model_at_end=True,
    )
    assert args.load_best_model_at_end and args.eval_steps == 5


# --- the wiring in a real Trainer ------------------------------------------------------------------


def _trainer(config: RunConfig, out: Path, callbacks: list[TrainerCallback] | None = None) -> Trainer:
    tokenizer = load_tokenizer(config.model)
    model = load_model(config.model, compute_dtype=torch.float32, model_max_length=config.data.cutoff_len)
    model = apply_finetuning(model, config.finetuning)
    train_set, eval_set, _ = build_datasets(config, tokenizer)
    args = build_training_arguments(config, out, torch.float32, has_eval_set=eval_set is not None)
    return Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=build_collator(tokenizer, packing=False),
        callbacks=callbacks,
    )


class _CheckpointsAtSave(TrainerCallback):
    """Record, after every save (rotation included), which checkpoints exist and which is best."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.seen: list[tuple[set[str], str | None, str]] = []

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        names = {p.name for p in self.out.glob("checkpoint-*")}
        best = Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None
        self.seen.append((names, best, f"checkpoint-{state.global_step}"))


def test_rotation_keeps_the_best_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    """save_total_limit=1 with an older best: during training both the best and the last remain.

    greater_is_better=true on a falling eval loss makes the first evaluation the best one.
    At the end transformers keeps only the best checkpoint when save_total_limit=1 (the final
    weights are in the run directory), and load_best_model_at_end puts the best weights there.
    """
    out = tmp_path / "run"
    config = _config(
        tiny_model_dir,
        output_dir=str(out),
        val_size=0.1,
        eval_strategy="steps",
        eval_steps=4,
        save_steps=4,
        max_steps=12,
        save_total_limit=1,
        greater_is_better=True,
        load_best_model_at_end=True,
    )
    watch = _CheckpointsAtSave(out)
    trainer = _trainer(config, out, [watch])
    trainer.train()
    assert [last for _, _, last in watch.seen] == ["checkpoint-4", "checkpoint-8", "checkpoint-12"]
    assert all(best == "checkpoint-4" for _, best, _ in watch.seen)
    for names, best, last in watch.seen:
        assert names == {best, last}, (names, best, last)
    assert {p.name for p in out.glob("checkpoint-*")} == {"checkpoint-4"}
    best_weights = load_file(out / "checkpoint-4" / "adapter_model.safetensors")
    trainer.save_model(str(tmp_path / "final"))
    final = load_file(tmp_path / "final" / "adapter_model.safetensors")
    assert all(final[k].equal(best_weights[k]) for k in best_weights)


def test_neftune_noises_embeddings_in_training_mode_only(tiny_model_dir: Path, tmp_path: Path) -> None:
    alpha = 5.0
    config = _config(
        tiny_model_dir, output_dir=str(tmp_path), neftune_noise_alpha=alpha, max_steps=2, save_steps=100
    )
    ids = torch.tensor([[5, 17, 42, 7, 99, 3]])
    checked: list[int] = []

    class Probe(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            embeddings = model.get_input_embeddings()
            clean = embeddings.weight[ids].detach()
            with torch.no_grad():
                embeddings.train()
                first, second = embeddings(ids), embeddings(ids)
                embeddings.eval()
                evaluated = embeddings(ids)
                embeddings.train()
            bound = alpha / (ids.shape[1] * clean.shape[-1]) ** 0.5
            assert not first.equal(clean) and not first.equal(second)  # fresh noise on every pass
            assert (first - clean).abs().max().item() <= bound + 1e-6
            assert evaluated.equal(clean)
            checked.append(state.global_step)

    trainer = _trainer(config, tmp_path, [Probe()])
    trainer.train()
    assert checked == [1, 2]
    embeddings = trainer.model.get_input_embeddings()
    embeddings.train()
    with torch.no_grad():  # the hook is gone after training: generation and export see clean embeddings
        assert embeddings(ids).equal(embeddings.weight[ids])


def test_gradient_checkpointing_gives_the_same_losses(tiny_model_dir: Path, tmp_path: Path) -> None:
    def losses(name: str, checkpointing: bool) -> list[float]:
        config = _config(
            tiny_model_dir,
            output_dir=str(tmp_path / name),
            gradient_checkpointing=checkpointing,
            max_steps=4,
            save_steps=100,
        )
        train(config)
        return [row["loss"] for row in RunDir(tmp_path / name).read_log() if "loss" in row]

    plain, recomputed = losses("plain", False), losses("checkpointed", True)
    assert len(plain) == 4 and plain[-1] < plain[0]
    assert recomputed == pytest.approx(plain, rel=1e-6, abs=1e-6)
