"""Sequence classifiers for stage cls: an encoder (BERT, MiniLM) or a causal LM with a classification head.

``AutoModelForSequenceClassification`` picks the head for the architecture: BERT-likes put a linear
``classifier`` on the pooled [CLS] token; Llama/Qwen2 put a linear ``score`` on the last non-padding
token, which they find through ``pad_token_id`` (so it must be set, also for models whose tokenizer
reuses EOS as padding). The head is new, so it always trains in full, LoRA or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunelab.errors import ModelError
from tunelab.model.loader import pretrained_kwargs
from tunelab.model.resolve import resolve_model_path

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from tunelab.config.schema import FinetuningArgs, ModelArgs

__all__ = ["apply_classifier_finetuning", "load_classifier"]

_WEIGHTS_HINT = "the directory needs model.safetensors (or sharded safetensors + index) matching config.json"


def load_classifier(
    model_args: ModelArgs,
    id2label: dict[int, str],
    *,
    pad_token_id: int,
    compute_dtype: torch.dtype,
    gradient_checkpointing: bool = False,
) -> tuple[PreTrainedModel, list[str]]:
    """The model with a ``len(id2label)``-way head, and the names of the modules it had to create.

    The created modules (the head, and e.g. BERT's pooler when the checkpoint was trained without
    one) start from random values, so they must train whatever ``finetuning_type`` says; any other
    weight missing from the checkpoint is an error, as in :func:`tunelab.model.load_model`.
    """
    from safetensors import SafetensorError
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    path = resolve_model_path(model_args.model_name_or_path, model_args.cache_dir)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=model_args.trust_remote_code)
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"cannot read the model config in {path}: {err}", "check config.json there") from err
    config.num_labels = len(id2label)
    config.id2label = dict(id2label)
    config.label2id = {label: i for i, label in id2label.items()}
    config.pad_token_id = pad_token_id
    config.problem_type = "single_label_classification"
    kwargs = pretrained_kwargs(model_args, config, compute_dtype)
    # transformers logs a load report listing the head as missing: expected here, and every other
    # missing weight becomes a ModelError below, so the report would only alarm
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            path, output_loading_info=True, **kwargs
        )
    except ValueError as err:
        if "Unrecognized configuration class" in str(err):
            raise ModelError(
                f"{type(config).__name__} ({path}) has no sequence-classification head in transformers",
                "use an encoder (BERT, MiniLM: model_name_or_path=minilm or tiny:bert) or a causal LM "
                "such as Llama/Qwen2 (tiny:llama, smollm2)",
            ) from None
        raise ModelError(f"cannot load the model weights in {path}: {err}", _WEIGHTS_HINT) from err
    except (OSError, KeyError, RuntimeError, SafetensorError) as err:
        raise ModelError(f"cannot load the model weights in {path}: {err}", _WEIGHTS_HINT) from err
    finally:
        hf_logging.set_verbosity(verbosity)
    created = _created_modules(model, sorted(info.get("missing_keys") or []))
    if "quantization_config" in kwargs:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    if gradient_checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
    return model, created


def _created_modules(model: PreTrainedModel, missing: list[str]) -> list[str]:
    """Modules whose weights the checkpoint lacked: the head (and a pooler); anything else is an error."""
    heads = _head_modules(model)
    created = sorted({key.rsplit(".", 1)[0] for key in missing})
    allowed = (*heads, f"{model.base_model_prefix}.pooler")
    unexpected = [name for name in created if not any(name == a or name.startswith(a + ".") for a in allowed)]
    if unexpected:
        raise ModelError(
            f"the checkpoint lacks weights of {len(unexpected)} modules besides the classification head, "
            f"e.g. {', '.join(unexpected[:3])}",
            _WEIGHTS_HINT,
        )
    return sorted(set(created) | set(heads))


def _head_modules(model: PreTrainedModel) -> list[str]:
    """Top-level modules outside the base model that hold weights: ``classifier`` (BERT) or ``score`` (Llama)."""
    prefix = model.base_model_prefix
    return [
        name
        for name, module in model.named_children()
        if name != prefix and any(True for _ in module.parameters(recurse=True))
    ]


def apply_classifier_finetuning(
    model: PreTrainedModel, finetuning_args: FinetuningArgs, created: list[str]
) -> torch.nn.Module:
    """LoRA (peft task SEQ_CLS, the created modules saved beside the adapter), freeze or full.

    Under freeze, ``freeze_trainable_layers`` picks encoder/decoder layers as for a causal LM, and
    the created modules train too.
    """
    from tunelab.model.adapters import apply_finetuning

    return apply_finetuning(model, finetuning_args, task_type="SEQ_CLS", head_modules=created)
