"""The distillation losses against closed-form values, and the properties the kd stage relies on."""

from __future__ import annotations

import math

import pytest
import torch

from tunelab.errors import ModelError
from tunelab.infer.teacher import check_shared_vocabulary
from tunelab.train.kd_loss import (
    chunked_kd_and_ce,
    divergence,
    teacher_targets,
    token_divergence,
)

P = [0.5, 0.3, 0.2]
Q = [0.25, 0.25, 0.5]


def _kl(a: list[float], b: list[float]) -> float:
    return sum(x * math.log(x / y) for x, y in zip(a, b))


def _logs(*dists: list[float]) -> list[torch.Tensor]:
    return [torch.tensor(d, dtype=torch.float64).log() for d in dists]


def test_forward_and_reverse_kl_match_their_definitions() -> None:
    log_p, log_q = _logs(P, Q)
    assert divergence(log_p, log_q, "forward_kl").item() == pytest.approx(_kl(P, Q), rel=1e-12)
    assert divergence(log_p, log_q, "reverse_kl").item() == pytest.approx(_kl(Q, P), rel=1e-12)
    assert divergence(log_p, log_p, "forward_kl").item() == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("beta", [0.5, 0.1, 0.9])
def test_generalized_jsd_matches_gkd_definition(beta: float) -> None:
    m = [beta * p + (1 - beta) * q for p, q in zip(P, Q)]
    expected = beta * _kl(P, m) + (1 - beta) * _kl(Q, m)
    log_p, log_q = _logs(P, Q)
    assert divergence(log_p, log_q, "jsd", beta).item() == pytest.approx(expected, rel=1e-12)
    if beta == 0.5:  # the symmetric JSD is bounded by ln 2
        assert 0 < expected < math.log(2)


def test_temperature_softens_both_sides_and_scales_by_t_squared() -> None:
    student = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)
    teacher = torch.tensor([[1.0, 1.5, -2.0]], dtype=torch.float64)
    t = 2.0
    p = torch.softmax(teacher / t, -1)[0].tolist()
    q = torch.softmax(student / t, -1)[0].tolist()
    got = token_divergence(student, torch.log_softmax(teacher, -1), None, kind="forward_kl", temperature=t)
    assert got.item() == pytest.approx(t * t * _kl(p, q), rel=1e-6)


def test_top_k_with_k_equal_to_vocabulary_is_the_full_loss() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 11), torch.randn(5, 11)
    for kind in ("forward_kl", "reverse_kl", "jsd"):
        full = token_divergence(student, *teacher_targets(teacher, None), kind=kind, temperature=1.5)
        log_probs, ids = torch.log_softmax(teacher, -1).topk(11, dim=-1)
        top = token_divergence(student, log_probs, ids, kind=kind, temperature=1.5)
        assert torch.allclose(full, top, atol=1e-6), kind


def test_top_k_renormalises_both_distributions_on_the_teachers_tokens() -> None:
    student = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    teacher = torch.tensor([[3.0, 0.0, 2.0, -1.0]])
    log_probs, ids = teacher_targets(teacher, 2)
    assert ids.tolist() == [[0, 2]]
    p = torch.softmax(teacher[0, [0, 2]], -1).tolist()
    q = torch.softmax(student[0, [0, 2]], -1).tolist()
    got = token_divergence(student, log_probs, ids, kind="forward_kl")
    assert got.item() == pytest.approx(_kl(p, q), rel=1e-5)


def test_chunked_loss_equals_unchunked_in_value_and_gradient() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(13, 8, requires_grad=True)
    head = torch.nn.Linear(8, 17, bias=False)
    labels = torch.randint(0, 17, (13,))
    teacher_logits = torch.randn(13, 17)

    def teacher(start: int, end: int):
        return teacher_targets(teacher_logits[start:end], 5)

    results = []
    for chunk in (1000, 4):
        hidden.grad, head.weight.grad = None, None
        sums = chunked_kd_and_ce(
            hidden, head, labels, teacher, kind="jsd", temperature=2.0, beta=0.3, chunk_tokens=chunk
        )
        (0.5 * sums.kd + 0.5 * sums.ce).backward()
        results.append(
            (sums.kd.item(), sums.ce.item(), sums.agree.item(), hidden.grad.clone(), head.weight.grad.clone())
        )
    (kd1, ce1, ag1, gh1, gw1), (kd2, ce2, ag2, gh2, gw2) = results
    assert kd1 == pytest.approx(kd2, rel=1e-6) and ce1 == pytest.approx(ce2, rel=1e-6) and ag1 == ag2
    assert torch.allclose(gh1, gh2, atol=1e-6) and torch.allclose(gw1, gw2, atol=1e-6)
    expected_ce = torch.nn.functional.cross_entropy(head(hidden), labels, reduction="sum").item()
    assert ce1 == pytest.approx(expected_ce, rel=1e-6)


class _Vocab:
    def __init__(self, vocab: dict[str, int]) -> None:
        self.vocab = vocab

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)


def test_padded_embedding_rows_are_cut_to_the_shared_part() -> None:
    vocab = _Vocab({f"t{i}": i for i in range(60)})
    shared = check_shared_vocabulary(
        vocab, vocab, student_rows=64, teacher_rows=128, student_name="s", teacher_name="t"
    )
    assert shared == 64


def test_different_vocabularies_name_both_and_point_to_sequence_level_kd() -> None:
    student = _Vocab({"a": 0, "b": 1})
    teacher = _Vocab({"a": 0, "c": 1, "d": 2})
    with pytest.raises(ModelError) as info:
        check_shared_vocabulary(
            student,
            teacher,
            student_rows=2,
            teacher_rows=3,
            student_name="tiny:llama",
            teacher_name="big-teacher",
        )
    assert "tiny:llama" in info.value.message and "big-teacher" in info.value.message
    assert "3 tokens" in info.value.message and "2 tokens" in info.value.message
    assert "distill-responses" in info.value.hint
