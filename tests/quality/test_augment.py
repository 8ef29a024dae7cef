"""tunelab data augment: origin on every new row, eval records never augmented, resumable, model or API rewriting."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tunelab.errors import ConfigError
from tunelab.quality.augment import augment_data
from tunelab.quality.rewrite import ApiRewriter, EngineRewriter


def _rows(path):
    if path.suffix == ".csv":
        import csv

        with path.open() as handle:
            return list(csv.DictReader(handle))
    if path.suffix == ".jsonl":
        return [json.loads(x) for x in path.read_text().splitlines()]
    return json.loads(path.read_text())


def test_eda_never_augments_held_out_records(make_config, tmp_path):
    from tunelab.data.loader import load_records

    config = make_config("cls", "cls", "model_name_or_path=tiny:bert", "val_size=1", "test_size=1")
    result = augment_data(config, tmp_path / "aug", method="eda", n=2)
    held = _rows(tmp_path / "aug" / "data" / "cls_eval.csv")
    splits = load_records(config.data, "cls", seed=config.training.seed)
    expected = sorted(int(s.split("#")[1]) for part in (splits.eval, splits.test) for s in part["source"])
    original = _rows(next((tmp_path / "data").glob("cls.csv")))
    assert sorted(held, key=str) == sorted((original[i] for i in expected), key=str)
    train = _rows(tmp_path / "aug" / "data" / "cls.csv")
    added = [r for r in train if r.get("augmented_from")]
    assert added and result.n_added == len(added) and result.n_original == 2
    assert {int(r["augmented_from"].split("#")[1]) for r in added}.isdisjoint(expected)
    for row in added:  # same label, edited text, named origin
        source = original[int(row["augmented_from"].split("#")[1])]
        assert (
            row["label"] == source["label"]
            and row["text"] != source["text"]
            and row["augment_method"] == "eda"
        )
    assert result.config_hint.endswith("eval_dataset=cls_eval val_size=0 test_size=0")
    registry = json.loads((tmp_path / "aug" / "dataset_info.json").read_text())
    assert set(registry) == {"cls", "cls_eval"}


def test_eda_is_for_classification_only(make_config):
    with pytest.raises(ConfigError, match="stage cls"):
        augment_data(make_config("sft"), "unused", method="eda")


def test_paraphrase_with_a_local_model_resumes(make_config, tmp_path, tiny_engine):
    config = make_config("chat", "sft", "val_size=0")
    rewriter = EngineRewriter(tiny_engine, max_new_tokens=8)

    def interrupt(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        augment_data(
            config,
            tmp_path / "a",
            method="paraphrase",
            n=1,
            rewriter=rewriter,
            batch_size=1,
            on_batch=interrupt,
        )
    resumed = augment_data(config, tmp_path / "a", method="paraphrase", n=1, rewriter=rewriter, batch_size=1)
    assert resumed.n_done_now == 2
    whole = augment_data(config, tmp_path / "b", method="paraphrase", n=1, rewriter=rewriter, batch_size=1)
    a, b = (_rows(tmp_path / d / "data" / "chat.jsonl") for d in ("a", "b"))
    assert a == b and len(a) == 3 + whole.n_added
    for row in (r for r in a if r.get("augmented_from")):
        assert (
            row["conversations"][-1]["value"]
            == _rows(tmp_path / "data" / "chat.jsonl")[int(row["augmented_from"].split("#")[1])][
                "conversations"
            ][-1]["value"]
        )


def test_back_translate_through_an_openai_compatible_server(make_config, tmp_path, tiny_engine):
    import uvicorn
    from uvicorn.config import Config

    from tunelab.infer.api import create_app

    server = uvicorn.Server(
        Config(create_app(tiny_engine, model_id="teacher"), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        rewriter = ApiRewriter(f"http://127.0.0.1:{port}/v1", model=None, api_key=None, max_tokens=8)
        assert rewriter.model == "teacher"
        result = augment_data(
            make_config("sft", "sft", "val_size=0"),
            tmp_path / "aug",
            method="back_translate",
            n=1,
            rewriter=rewriter,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert result.n_original == 9  # sft.json's readable records
    added = [r for r in _rows(tmp_path / "aug" / "data" / "sft.json") if r.get("augmented_from")]
    assert len(added) == result.n_added and all(r["augment_method"] == "back_translate" for r in added)


class _Prefix:
    """A rewriter that answers "Rephrased: <text>": enough to check where the new text lands in each format."""

    name = "prefix"

    def complete(self, conversations, *, seed):
        return ["Rephrased: " + c[-1]["content"].rsplit("\n\n", 1)[-1] for c in conversations]


@pytest.mark.parametrize(
    ("dataset", "stage", "file", "field"),
    [
        ("dpo", "dpo", "dpo.json", lambda r: r["instruction"]),
        ("kto", "kto", "kto.json", lambda r: r["messages"][0]["content"]),
        ("text", "pt", "text.txt", lambda r: r["text"]),
    ],
)
def test_paraphrase_rewrites_the_prompt_of_every_format(make_config, tmp_path, dataset, stage, file, field):
    from tunelab.data.files import read_rows

    result = augment_data(
        make_config(dataset, stage, "val_size=0"), tmp_path / "aug", method="paraphrase", rewriter=_Prefix()
    )
    rows = read_rows(tmp_path / "aug" / "data" / file)
    originals = read_rows(tmp_path / "data" / file)
    added = [r for r in rows if file.endswith(".txt") or r.get("augmented_from")]
    if file.endswith(".txt"):  # plain text keeps no origin columns: the copies follow their originals
        assert len(rows) == len(originals) + result.n_added
        assert {field(r) for r in rows} >= {"Rephrased: " + field(o) for o in originals}
    else:
        assert len(added) == result.n_added > 0
        for row in added:
            source = originals[int(row["augmented_from"].split("#")[1])]
            assert field(row) == "Rephrased: " + field(source)
