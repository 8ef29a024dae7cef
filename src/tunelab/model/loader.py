"""Load the tokenizer and the model a run asks for: precision, attention, RoPE scaling, quantization.

Weights are loaded in the compute dtype (bf16 where the machine is fast at it, else fp32). Frozen base
weights then cost half the memory and need no per-step cast; the parameters that train are upcast to
fp32 by `apply_finetuning`, so optimizer updates keep full precision.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tunelab.errors import ConfigError, ModelError, ResourceError
from tunelab.model import dtype_guard
from tunelab.model.attention import resolve_attn_implementation
from tunelab.model.resolve import resolve_model_path

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tunelab.config.schema import ModelArgs

__all__ = [
    "build_quantization_config",
    "build_rope_parameters",
    "check_quantization_supported",
    "load_model",
    "load_tokenizer",
    "pretrained_kwargs",
]

_QLORA_HINT = (
    "QLoRA (quantization_bit) needs an NVIDIA GPU and `pip install bitsandbytes`; "
    "on this machine remove quantization_bit and use plain LoRA"
)


def load_tokenizer(model_args: ModelArgs, *, padding_side: str = "right") -> PreTrainedTokenizerBase:
    """The model's tokenizer, with a pad token guaranteed and right padding (what training wants)."""
    from transformers import AutoTokenizer

    path = resolve_model_path(model_args.model_name_or_path, model_args.cache_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=model_args.trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelError(
            f"cannot load the tokenizer from {path}: {err}",
            "the directory needs tokenizer.json (or the files of a slow tokenizer) next to config.json",
        ) from err
    if tokenizer.pad_token is None:
        # Padding positions are masked out of attention and loss, so reusing EOS (or UNK) is harmless.
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise ModelError(
                f"the tokenizer in {path} has neither a pad, an eos nor an unk token",
                "add a pad_token to its tokenizer_config.json",
            )
        tokenizer.pad_token = fallback
    tokenizer.padding_side = padding_side
    return tokenizer


def pretrained_kwargs(
    model_args: ModelArgs, config: Any, compute_dtype: torch.dtype, *, sharded: bool = False
) -> dict[str, Any]:
    """``from_pretrained`` arguments shared by every model class tunelab loads: the (edited) config,
    dtype, attention implementation, remote code, and bitsandbytes quantization on the GPU.

    ``sharded``: FSDP or ZeRO-3 will partition the model, so a quantized model is not pinned to this
    rank's GPU (the engine places the shards; the 4-bit storage dtype equals the compute dtype so
    that FSDP can flatten quantized and plain weights together, as QLoRA + FSDP requires)."""
    kwargs: dict[str, Any] = {
        "config": config,
        "dtype": compute_dtype,
        "attn_implementation": resolve_attn_implementation(model_args.flash_attn),
        "trust_remote_code": model_args.trust_remote_code,
    }
    quantization = build_quantization_config(model_args, compute_dtype)
    if quantization is not None:
        check_quantization_supported()
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(**quantization)
        if not sharded:
            kwargs["device_map"] = {"": torch.cuda.current_device()}
    return kwargs


def load_model(
    model_args: ModelArgs,
    *,
    compute_dtype: torch.dtype,
    gradient_checkpointing: bool = False,
    model_max_length: int | None = None,
    sharded: bool = False,
) -> PreTrainedModel:
    """The causal LM for `model_args`, loaded in `compute_dtype` and ready for adapters.

    `model_max_length` (usually cutoff_len) sizes the RoPE scaling factor when `rope_scaling` is set and
    `model_args.model_max_length` is not.
    """
    from safetensors import SafetensorError
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolve_model_path(model_args.model_name_or_path, model_args.cache_dir)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=model_args.trust_remote_code)
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(
            f"cannot read the model config in {path}: {err}", "check config.json in that directory"
        ) from err

    routed = getattr(config, "mixture_of_depths", None) is not None  # saved after mixture_of_depths: convert
    if routed != (model_args.mixture_of_depths == "load"):
        raise ConfigError(
            f"{path} {'has' if routed else 'has no'} Mixture-of-Depths routers, but mixture_of_depths is "
            f"{model_args.mixture_of_depths or 'unset'}",
            "set mixture_of_depths: load" if routed else "use mixture_of_depths: convert (or none)",
        )
    if model_args.rope_scaling is not None:
        target = model_args.model_max_length or model_max_length
        if target is None:
            raise ConfigError(
                "rope_scaling is set but no target context length is known",
                "set model_max_length (or cutoff_len) to the context length you want",
            )
        scaled = build_rope_parameters(
            dict(getattr(config, "rope_parameters", None) or {}),
            config.max_position_embeddings,
            model_args.rope_scaling,
            target,
        )
        if scaled is not None:
            config.rope_parameters, config.max_position_embeddings = scaled

    kwargs = pretrained_kwargs(model_args, config, compute_dtype, sharded=sharded)

    weights_hint = (
        "the directory needs model.safetensors (or sharded safetensors + index) matching config.json"
    )
    try:
        with dtype_guard.loading():  # from_pretrained changes torch's process-wide default dtype
            model, info = AutoModelForCausalLM.from_pretrained(path, output_loading_info=True, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:
        raise ModelError(f"cannot load the model weights in {path}: {err}", weights_hint) from err
    if info.get("missing_keys"):
        # transformers would silently start these from random values; training on that is never intended.
        missing = sorted(info["missing_keys"])
        raise ModelError(
            f"the weights in {path} lack {len(missing)} tensors of the model, e.g. {', '.join(missing[:3])}",
            weights_hint,
        )

    if model_args.mixture_of_depths is not None:  # before checkpointing, which then sees the inner layers
        from tunelab.model.mod import convert_to_mod, load_mod

        model = convert_to_mod(model) if model_args.mixture_of_depths == "convert" else load_mod(model, path)
    if "quantization_config" in kwargs:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    if gradient_checkpointing:
        # Non-reentrant checkpointing works with frozen inputs (LoRA) without enable_input_require_grads.
        try:
            model.activation_checkpointing_enable({"use_reentrant": False})
        except ValueError as err:
            raise ConfigError(
                f"gradient_checkpointing: {type(model).__name__} does not support it",
                "set gradient_checkpointing: false",
            ) from err
        model.config.use_cache = False
    return model


def build_quantization_config(
    model_args: ModelArgs, compute_dtype: torch.dtype | None = None
) -> dict[str, Any] | None:
    """Keyword arguments for transformers' BitsAndBytesConfig, or None when no quantization is asked.

    Pure (no bitsandbytes, no GPU needed) so that the wiring from config keys can be tested anywhere.
    """
    bits = model_args.quantization_bit
    if bits is None:
        return None
    if model_args.quantization_method != "bnb":
        raise ConfigError(
            f"quantization_method={model_args.quantization_method!r} is not supported",
            "use quantization_method: bnb",
        )
    if bits == 8:
        return {"load_in_8bit": True}
    if bits == 4:
        return {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_use_double_quant": model_args.double_quantization,
            "bnb_4bit_compute_dtype": compute_dtype,
            # Storing the 4-bit blocks in the compute dtype lets FSDP/DeepSpeed shard them with the rest.
            "bnb_4bit_quant_storage": compute_dtype,
        }
    raise ConfigError(f"quantization_bit={bits} is not supported", "use quantization_bit: 4 or 8")


def check_quantization_supported() -> None:
    """Raise ResourceError unless bitsandbytes quantization can run here (CUDA GPU + bitsandbytes)."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise ResourceError(
            "quantization_bit is set but there is no CUDA GPU on this machine",
            _QLORA_HINT,
            code="qlora_needs_cuda",
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ResourceError(
            "quantization_bit is set but the bitsandbytes package is not installed",
            _QLORA_HINT,
            code="qlora_needs_package",
            params={"package": "bitsandbytes"},
        )


def build_rope_parameters(
    rope_parameters: dict[str, Any], max_position_embeddings: int, method: str, target_length: int
) -> tuple[dict[str, Any], int] | None:
    """New `(rope_parameters, max_position_embeddings)` stretching the context to `target_length`.

    None when the model already covers `target_length` (scaling would only blur positions).
    The factor is rounded up to a whole number, as most published long-context recipes do.
    """
    if target_length <= max_position_embeddings:
        return None
    factor = float(math.ceil(target_length / max_position_embeddings))
    base = {key: value for key, value in rope_parameters.items() if key == "rope_theta"}
    base.setdefault("rope_theta", 10000.0)
    scaled: dict[str, Any] = {**base, "rope_type": method, "factor": factor}
    if method in ("yarn", "llama3"):
        scaled["original_max_position_embeddings"] = max_position_embeddings
    if method == "llama3":
        # The frequency band edges Llama 3.1 was trained with.
        scaled.update(low_freq_factor=1.0, high_freq_factor=4.0)
    # Dynamic NTK scales itself past max_position_embeddings, so that must stay the trained length.
    new_max = max_position_embeddings if method == "dynamic" else int(max_position_embeddings * factor)
    return scaled, new_max
