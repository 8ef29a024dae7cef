"""`tunelab find-batch`: doubling + binary search on real steps under a memory ceiling."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import load_config
from tunelab.tune.find_batch import find_batch, search_largest

runner = CliRunner()


def test_search_doubles_then_bisects_and_never_returns_a_failure() -> None:
    calls: list[int] = []

    def fits(size: int) -> bool:
        calls.append(size)
        return size <= 11

    assert search_largest(fits, cap=64) == 11
    assert calls == [1, 2, 4, 8, 16, 12, 10, 11]
    assert search_largest(lambda size: size <= 100, cap=64) == 64  # capped
    assert search_largest(lambda size: False, cap=64) == 0


def test_finds_the_boundary_under_a_ceiling(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "model_name_or_path": str(tiny_model_dir),
                "dataset": "instruct_en",
                "dataset_dir": "builtin",
                "template": "chatml",
                "compute_type": "fp32",
                "val_size": 0.1,
                "per_device_train_batch_size": 2,
                "gradient_accumulation_steps": 16,
            }
        ),
        encoding="utf-8",
    )
    search = find_batch(load_config(cfg), max_mem_gib=0.012, max_batch=16, max_eval_batch=16)
    train = {p.batch: p for p in search.probes if p.split == "train"}
    largest = search.largest_train_batch
    assert 1 <= largest < 16
    assert train[largest].ok and train[largest].peak <= 0.012 * 2**30
    assert not train[largest + 1].ok  # the boundary was probed and failed
    assert all(p.ok for p in train.values() if p.batch <= largest)
    assert search.effective_batch == 32 and search.train_batch <= largest
    evals = {p.batch: p for p in search.probes if p.split == "eval"}
    assert evals[search.eval_batch].ok and search.eval_batch > largest  # no gradients: more rows fit

    out = tmp_path / "found.yaml"
    args = [
        "find-batch",
        str(cfg),
        "--max-mem",
        "0.012",
        "--max-batch",
        "2",
        "--max-eval-batch",
        "2",
        "-o",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    written = load_config(out)
    assert written.training.per_device_train_batch_size * written.training.gradient_accumulation_steps == 32
