"""The datasets private attribute behind tunelab.compat.datasets still exists and tracks the content."""

from __future__ import annotations

import datasets

from tunelab.compat.datasets import dataset_fingerprint


def test_fingerprint_exists_and_changes_with_a_transform() -> None:
    records = datasets.Dataset.from_dict({"text": ["a", "b"]})
    before = dataset_fingerprint(records)
    assert before and before == records._fingerprint, "datasets renamed Dataset._fingerprint"
    mapped = records.map(lambda row: {"text": row["text"] * 2})
    assert dataset_fingerprint(mapped) not in ("", before)
