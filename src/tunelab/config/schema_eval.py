"""Config group of `tunelab eval` (LLaMA-Factory key names: predict_with_generate, task, n_shot, lang, save_dir)."""

from __future__ import annotations

from typing import Literal

from tunelab.config.fields import Group, field

__all__ = ["EvalArgs"]


class EvalArgs(Group):
    """What `tunelab eval` measures and where it writes the results."""

    predict_with_generate: bool = field(
        False,
        en="eval: generate an answer for every eval record (generated_predictions.jsonl) and score it "
        "with BLEU-4 and ROUGE-1/2/L.",
        zh="eval：为每条评估样本生成回答（generated_predictions.jsonl），并计算 BLEU-4 和 ROUGE-1/2/L。",
    )
    eval_split: Literal["auto", "eval", "test"] = field(
        "auto",
        en="eval: which split to score: eval (eval_dataset or val_size), test (test_size), or auto "
        "(test when test_size is set, else eval).",
        zh="eval：评估哪个划分：eval（eval_dataset 或 val_size）、test（test_size），或 auto"
        "（设置了 test_size 时用 test，否则用 eval）。",
    )
    task: str | None = field(
        None,
        en="eval: multiple-choice benchmark (MMLU/C-Eval/CMMLU layout: question, A-D, answer, subject): "
        "a name in task_dir/benchmark_info.json, a .json/.jsonl/.csv file, or a folder of per-subject CSVs.",
        zh="eval：多项选择基准（MMLU/C-Eval/CMMLU 格式：`question`、A-D、`answer`、`subject` 列）："
        "task_dir/benchmark_info.json 中的名称、.json/.jsonl/.csv 文件，或按科目分文件的 CSV 目录。",
    )
    task_dir: str = field(
        "builtin",
        en="eval: folder with benchmark_info.json naming benchmark files; 'builtin' uses tunelab's bundled ones.",
        zh="eval：存放 benchmark_info.json（登记基准文件）的目录；'builtin' 使用 tunelab 自带的基准。",
    )
    n_shot: int = field(
        5,
        en="eval: solved examples of the same subject shown before each benchmark question.",
        zh="eval：每道基准题前给出的同科目已解答示例数。",
        ge=0,
    )
    lang: Literal["auto", "en", "zh"] = field(
        "auto",
        en="eval: language of the benchmark prompt wording; auto picks zh for subjects written in Chinese.",
        zh="eval：基准提示语的语言；auto 时中文科目用 zh。",
    )
    save_dir: str | None = field(
        None,
        en="eval: output directory; default <run directory>/eval-<time>, or runs/eval-<time> without a run.",
        zh="eval：输出目录；默认 <运行目录>/eval-<时间>，没有运行目录时为 runs/eval-<时间>。",
    )
