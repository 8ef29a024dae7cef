"""The tiny BERT-style encoder (``tiny:bert``): a WordPiece tokenizer and a small masked-LM, built offline.

Same recipe as the tiny causal LMs in :mod:`tunelab.model.tiny` (bundled text, fixed seed, a short
warm-up so the model is not purely random), but with BERT's objective: 15% of the tokens are
replaced by ``[MASK]`` and predicted. The checkpoint is a ``BertForMaskedLM``, so
``AutoModelForSequenceClassification`` loads its encoder and starts the classifier (and BERT's
pooler, which masked-LM training does not use) from scratch, exactly as with a real BERT checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["build_encoder_into"]

_SPECIAL = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
_MASK_SHARE = 0.15


def build_encoder_into(
    out_dir: Path,
    spec: dict[str, Any],
    files: list[Path],
    *,
    seed: int,
    vocab_size: int,
    steps: int,
    lr: float,
) -> None:
    """Train the tokenizer, build the model from ``spec`` (a BertConfig's shape), warm it up, save both."""
    tokenizer = _train_wordpiece(files, vocab_size, spec["max_position_embeddings"])
    tokenizer.save_pretrained(out_dir)
    model = _build_model(spec, tokenizer, seed)
    _pretrain_mlm(model, tokenizer, files, seed=seed, steps=steps, lr=lr)
    model.save_pretrained(out_dir)


def _lines(files: list[Path]) -> list[str]:
    return [line for path in files for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _train_wordpiece(files: list[Path], vocab_size: int, max_length: int) -> Any:
    """A lower-casing WordPiece tokenizer with BERT's [CLS] text [SEP] framing (CJK split per character)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordPiece(unk_token=_SPECIAL["unk"]))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(_SPECIAL.values()), show_progress=False
    )
    backend.train_from_iterator(_lines(files), trainer=trainer)
    cls_id, sep_id = backend.token_to_id(_SPECIAL["cls"]), backend.token_to_id(_SPECIAL["sep"])
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=_SPECIAL["unk"],
        pad_token=_SPECIAL["pad"],
        cls_token=_SPECIAL["cls"],
        sep_token=_SPECIAL["sep"],
        mask_token=_SPECIAL["mask"],
        model_max_length=max_length,
        padding_side="right",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def _build_model(spec: dict[str, Any], tokenizer: Any, seed: int) -> Any:
    import torch
    import transformers

    shape = dict(spec)
    model_class = getattr(transformers, shape.pop("architecture"))
    config = model_class.config_class(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, type_vocab_size=2, **shape
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(config)


def _pretrain_mlm(model: Any, tokenizer: Any, files: list[Path], *, seed: int, steps: int, lr: float) -> None:
    """Masked-LM warm-up on the bundled lines (seeded; a few seconds on a CPU)."""
    import torch

    encoded = tokenizer(_lines(files), truncation=True, max_length=64)["input_ids"]
    special = set(tokenizer.all_special_ids)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    with torch.random.fork_rng(devices=[]):
        generator = torch.Generator().manual_seed(seed)
        for step in range(steps):
            picks = torch.randint(0, len(encoded), (16,), generator=generator).tolist()
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in picks]}, return_tensors="pt")
            ids = batch["input_ids"]
            maskable = ~torch.isin(ids, torch.tensor(sorted(special)))
            chosen = (torch.rand(ids.shape, generator=generator) < _MASK_SHARE) & maskable
            labels = torch.where(chosen, ids, torch.full_like(ids, -100))
            inputs = torch.where(chosen, torch.full_like(ids, tokenizer.mask_token_id), ids)
            scale = min(1.0, (step + 1) / 10) * (1 - step / steps)  # warm-up, linear decay
            for group in optimizer.param_groups:
                group["lr"] = lr * scale
            model(input_ids=inputs, attention_mask=batch["attention_mask"], labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    model.eval()
