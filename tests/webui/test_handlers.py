"""Tab handlers on real files and a real tiny model, without a browser."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tunelab.runs.rundir import RunDir
from tunelab.webui.tabs.chat import load_model, stream_reply, unload_model
from tunelab.webui.tabs.evaluate import eval_results
from tunelab.webui.tabs.export import export_report
from tunelab.webui.watch import curve_figure, curve_frame, events_html, read_progress


def _fake_run(path: Path) -> RunDir:
    run = RunDir(path)
    for step in range(1, 6):
        row = {
            "current_steps": step,
            "total_steps": 10,
            "loss": 5.0 - step * 0.3,
            "learning_rate": 1e-3,
            "percentage": step * 10.0,
            "elapsed_time": f"0:00:0{step}",
            "remaining_time": "0:00:05",
        }
        if step == 4:
            row["eval_loss"] = 4.2
        run.write_log_row(row)
    run.write_event("health", "loss spike at step 5", rule="spike", step=5, action="warn")
    run.write_event("health", "diverging: stopped", rule="update_ratio", step=5, action="stop")
    return run


def test_progress_curves_and_events_come_from_the_run_directory(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "run")
    progress = read_progress(run.path)
    assert (progress.step, progress.total, progress.remaining) == (5, 10, "0:00:05")
    assert progress.loss == pytest.approx(3.5) and progress.eval_loss == pytest.approx(4.2)
    assert "step 5/10 (50%)" in progress.text("en") and "第 5/10 步" in progress.text("zh")
    frame = curve_frame(run.read_log(), {"loss": "train", "eval_loss": "eval"}, smoothed="train (smoothed)")
    assert sorted(set(frame["series"])) == ["eval", "train", "train (smoothed)"]
    assert len(frame[frame["series"] == "eval"]) == 1
    figure = curve_figure(frame, title="loss", ylabel="loss")
    assert len(figure.axes[0].lines) == 3
    assert curve_figure(curve_frame([], {"loss": "train"}), title="t", ylabel="y") is None
    html = events_html(run.path, "en")
    assert html.index("diverging") < html.index("loss spike")  # newest first
    assert "tl-stop" in html and "tl-warn" in html
    assert "暂无事件" in events_html(tmp_path / "empty", "zh")


def test_eval_results_show_before_after_and_predictions(tmp_path: Path) -> None:
    (tmp_path / "candidate").mkdir()
    (tmp_path / "comparison.json").write_text(
        json.dumps(
            {
                "reference": {"label": "base", "metrics": {"model": "base", "eval_loss": 3.0, "bleu-4": 1.0}},
                "candidate": {"label": "run", "metrics": {"model": "run", "eval_loss": 2.0, "bleu-4": 9.5}},
                "delta": {"eval_loss": -1.0, "bleu-4": 8.5},
            }
        )
    )
    (tmp_path / "candidate" / "generated_predictions.jsonl").write_text(
        json.dumps({"prompt": "hi", "label": "hello", "predict": "hey"}) + "\n"
    )
    table, predictions = eval_results(str(tmp_path))
    assert list(table.columns) == ["metric", "base", "run", "delta"]
    assert table.set_index("metric").loc["eval_loss", "delta"] == "-1"
    assert predictions.to_dict("records") == [{"prompt": "hi", "label": "hello", "predict": "hey"}]


def test_export_report_shows_the_verification(tmp_path: Path) -> None:
    report = {
        "export_dir": str(tmp_path),
        "format": "safetensors",
        "dtype": "fp32",
        "n_shards": 3,
        "total_bytes": 2_000_000,
        "verification": {
            "passed": True,
            "max_abs_diff": 1e-6,
            "tolerance": 1e-4,
            "argmax_agreement": 1.0,
            "n_positions": 40,
        },
    }
    (tmp_path / "export_report.json").write_text(json.dumps(report))
    table, verdict = export_report(None, "en", str(tmp_path))
    assert "Verification passed" in verdict and "100.0%" in verdict
    assert table.set_index("key").loc["n_shards", "value"] == "3"
    _, verdict_zh = export_report(None, "zh", str(tmp_path))
    assert "校验通过" in verdict_zh


def test_chat_reply_streams_in_pieces(tiny_engine) -> None:
    states = list(stream_reply(tiny_engine, "en", "Who are you?", [], "", 0.0, 0.9, 16))
    replies = [s[0][-1]["content"] for s in states if s[0] and s[0][-1]["role"] == "assistant"]
    assert len(set(replies)) >= 3, "the reply should arrive piece by piece"
    assert all(b.startswith(a) for a, b in zip(replies, replies[1:]))  # each state extends the last
    history, cleared, status = states[-1]
    assert history[0] == {"role": "user", "content": "Who are you?"} and cleared == ""
    assert "generated" in status
    # the history goes back into the next turn
    follow = list(stream_reply(tiny_engine, "en", "And?", history, "Be brief.", 0.0, 0.9, 8))[-1][0]
    assert [m["role"] for m in follow] == ["user", "assistant", "user", "assistant"]


def test_chat_without_a_model_asks_to_load_one() -> None:
    ((history, kept, status),) = stream_reply(None, "zh", "hi", [], "", 0.7, 0.9, 8)
    assert history == [] and kept == "hi" and "请先加载模型" in status


def test_chat_sessions_do_not_share_a_model(tiny_model_dir: Path) -> None:
    from tunelab.config import config_from_dict

    config = config_from_dict(
        {"model_name_or_path": str(tiny_model_dir), "template": "chatml", "compute_type": "fp32"}
    )
    ctx = SimpleNamespace(form_config=lambda values: (None, config))
    status_a, engine_a = load_model(ctx, "en", [], None)
    status_b, engine_b = load_model(ctx, "en", [], None)
    assert engine_a is not None and engine_b is not None and engine_a is not engine_b
    assert "this browser session" in status_a
    reply_a = stream_reply(engine_a, "en", "Who are you?", [], "", 0.0, 0.9, 12)
    first = next(reply_a)  # session A is mid-reply ...
    _, engine_b = unload_model("en", engine_b)  # ... when session B unloads its model
    _, engine_a_state = unload_model("en", engine_a)  # and even when A's own state is cleared
    assert engine_b is None and engine_a_state is None
    rest = [first, *reply_a]
    assert rest[-1][0][-1]["role"] == "assistant" and "generated" in rest[-1][2]
    ((_, _, status),) = stream_reply(engine_b, "en", "hi", [], "", 0.0, 0.9, 8)
    assert "Load a model first" in status  # B's session has no model; A's reply was not broken


def _run_with_config(path: Path, lr: float, losses: list[float]) -> Path:
    from tunelab.config import dump_config, load_config

    run = RunDir(path)
    run.write_config(dump_config(load_config(None, ["model_name_or_path=tiny:llama", f"learning_rate={lr}"])))
    for step, loss in enumerate(losses, start=1):
        run.write_log_row({"current_steps": step, "total_steps": len(losses), "loss": loss})
    run.write_metrics({"status": "finished", "global_step": len(losses), "train_loss": losses[-1]})
    return path


def test_runs_tab_lists_and_compares(tmp_path: Path) -> None:
    from tunelab.webui.tabs.runs import compare, run_table

    runs = tmp_path / "runs"
    _run_with_config(runs / "a", 1e-4, [3.0, 2.5, 2.0])
    _run_with_config(runs / "b", 3e-4, [3.0, 2.0, 1.5])
    ctx = SimpleNamespace(
        runs_dir=runs, state_dir=tmp_path / "state", guard=SimpleNamespace(check=lambda p, k: p)
    )
    table, paths = run_table(ctx)
    assert sorted(table["run"]) == ["a", "b"] and set(table["status"]) == {"finished"}
    figure, metrics, diffs, status = compare(ctx, "en", ["a", "b"])
    assert status == "" and len(figure.axes[0].lines) == 2
    assert diffs.set_index("key").loc["learning_rate"].tolist() == ["0.0001", "0.0003"]
    assert "train_loss" in set(metrics["metric"])
    assert "至少选择两个" in compare(ctx, "zh", ["a"])[3]


def test_study_trials_and_best_config(tmp_path: Path) -> None:
    from tunelab.tune.trials import TRIAL_FILE, TrialOutcome
    from tunelab.webui.tune_results import best_config, trial_table

    study = tmp_path / "study"
    done = _run_with_config(study / "trial-000-lr0.0001", 1e-4, [3.0, 2.0])
    outcome = TrialOutcome(0, {"learning_rate": 1e-4}, done, "complete", value=2.0, steps=2, total_steps=2)
    (done / TRIAL_FILE).write_text(json.dumps(outcome.to_json()))
    running = RunDir(study / "trial-001-lr0.001")
    running.write_log_row({"current_steps": 1, "total_steps": 4, "loss": 2.5})
    table = trial_table(study)
    assert table["status"].tolist() == ["complete", "running"]
    assert table["steps"].tolist() == ["2/2", "1/4"]
    (study / "summary.json").write_text(json.dumps({"best": outcome.to_json()}))
    assert best_config(study)["learning_rate"] == 1e-4


def test_tool_results_are_read_from_the_files_the_commands_write(tmp_path: Path) -> None:
    from tunelab.webui.tune_results import read_tool_result

    (tmp_path / "advice.yaml").write_text(
        "# tunelab advise: task instruction\n"
        "model_name_or_path: tiny:llama\n"
        "learning_rate: 0.0014  # lora instruction: 1e-4-2e-4, x10 under 1B\n"
        "early_stopping:  # stop when eval_loss stops improving\n"
        "  enabled: true\n"
        "  patience: 3\n"
    )
    view = read_tool_result("advise", tmp_path, "en")
    assert view.apply == {"learning_rate": 0.0014, "early_stopping": {"enabled": True, "patience": 3}}
    assert view.table["reason"].tolist()[0].startswith("lora instruction")
    assert "model_name_or_path" not in view.apply  # unchanged keys carry no reason

    (tmp_path / "estimate.json").write_text(
        json.dumps(
            {
                "weights_bytes": 2e9,
                "activations_bytes": 1e9,
                "peak_bytes": 3.5e9,
                "budget_bytes": 3e9,
                "fits": False,
            }
        )
    )
    view = read_tool_result("estimate", tmp_path, "zh")
    assert "放不下" in view.summary_html and "3.500" in view.summary_html
    assert view.table["组成部分"].tolist() == ["权重", "激活值", "峰值"]  # columns and parts in Chinese

    (tmp_path / "lr_find.json").write_text(
        json.dumps({"suggestion": 0.0042, "lrs": [1e-7, 1.0], "method": "x"})
    )
    (tmp_path / "lr_find.png").write_bytes(b"\\x89PNG")
    view = read_tool_result("lr-find", tmp_path, "en")
    assert view.apply == {"learning_rate": 0.0042} and view.plot.endswith("lr_find.png")
    assert "lrs" not in set(view.table["key"])

    assert "no result" in read_tool_result("find-batch", tmp_path / "missing", "en").summary_html


def test_data_preview_names_each_sample_of_a_preference_pair(tiny_model_dir: Path) -> None:
    from tunelab.config import config_from_dict
    from tunelab.webui.tabs.train import preview_dataset

    values = {"model_name_or_path": str(tiny_model_dir), "stage": "dpo", "dataset": "pref_polite_en"}
    config = config_from_dict({**values, "dataset_dir": "builtin", "template": "chatml"})
    ctx = SimpleNamespace(form_config=lambda _values: (values, config))  # the form's own test is in test_app
    html = preview_dataset(ctx, "en", [])
    assert html.count("tl-sample-head'>chosen · ") == 3 and html.count("tl-sample-head'>rejected · ") == 3
    assert "tl-learned" in html and "&lt;|im_start|&gt;assistant" in html


def test_data_preview_shows_the_data_check(tmp_path: Path, tiny_model_dir: Path) -> None:
    import json

    from tunelab.config import config_from_dict
    from tunelab.webui.tabs.train import preview_dataset

    rows = [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(5)]
    (tmp_path / "d.json").write_text(json.dumps([*rows, rows[0]]))
    values = {"model_name_or_path": str(tiny_model_dir), "dataset": str(tmp_path / "d.json")}
    config = config_from_dict({**values, "template": "chatml"})
    ctx = SimpleNamespace(form_config=lambda _values: (values, config))
    page = preview_dataset(ctx, "zh", [])
    assert "数据检查" in page and "发现问题：1" in page and "完全重复" in page
