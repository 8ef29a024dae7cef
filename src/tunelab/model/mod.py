"""Mixture-of-Depths (Raposo et al., 2024; ``mixture_of_depths: convert | load``) as decoder-layer wrappers.

In a routed block a linear router scores every token; in training only the top ``capacity`` fraction
of each sequence (the paper's 12.5%, also the mixture-of-depth package's default that LLaMA-Factory
uses) goes through the block, the others pass along the residual stream unchanged. As in the paper,
every other block is routed and the first one is not (layers 1, 3, 5, ...).

The block's update for a routed token is scaled so the router receives a gradient:
``out = x + (1 + r) * (block(x) - x)``, with ``r`` the router's score. The router starts with zero
bias and tiny weights (std 1e-3), so a freshly converted model computes almost exactly what the
plain model did (``1 + r`` is near 1) while the top-k order is already defined.

Nothing in transformers is patched: each routed layer is replaced by :class:`MoDLayer`, which gathers
the selected tokens (keeping their order, so causal attention among them stays causal), slices the
position embeddings, position ids and a 4-D attention mask for them, calls the original layer and
scatters the result back. Top-k over a whole sequence looks at future tokens, which causal
generation cannot do (a known MoD limitation); so in eval mode every token goes through every block
(still scaled by ``1 + r``), the choice the paper's auxiliary-predictor variant approximates.

Saving: the wrapper's state dict uses the original layer's key names plus ``<layer>.router.weight``
/ ``.bias``, and the routing settings go into ``config.json`` (``mixture_of_depths``), so
``save_pretrained`` writes a checkpoint that loads as a plain model and ``load`` re-applies routing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tunelab.errors import ModelError

__all__ = ["DEFAULT_CAPACITY", "MoDLayer", "convert_to_mod", "load_mod"]

DEFAULT_CAPACITY = 0.125
CONFIG_KEY = "mixture_of_depths"


class MoDLayer(nn.Module):
    """A decoder layer that only the top-k tokens (by a learned router score) go through in training."""

    def __init__(self, layer: nn.Module, hidden_size: int, capacity: float) -> None:
        super().__init__()
        if not 0 < capacity <= 1:
            raise ValueError(f"capacity must be in (0, 1], got {capacity}")
        self.layer = layer
        self.capacity = capacity
        weight = next(layer.parameters())
        self.router = nn.Linear(hidden_size, 1, device=weight.device, dtype=weight.dtype)
        nn.init.normal_(self.router.weight, std=1e-3)
        nn.init.zeros_(self.router.bias)
        self.register_state_dict_post_hook(_flatten_keys)
        self.register_load_state_dict_pre_hook(_nest_keys)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: Any = None,
        position_ids: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Route the top-k tokens of each sequence through the layer (all tokens in eval mode)."""
        scores = self.router(hidden_states).squeeze(-1)  # [batch, seq]
        batch, length = scores.shape
        k = max(1, int(length * self.capacity))
        if not self.training or k >= length:
            out = self.layer(
                hidden_states, attention_mask, position_ids, position_embeddings=position_embeddings, **kwargs
            )
            return hidden_states + (1 + scores).unsqueeze(-1) * (out - hidden_states)
        index = scores.topk(k, dim=1).indices.sort(dim=1).values  # [batch, k], in sequence order
        gather = index.unsqueeze(-1).expand(-1, -1, hidden_states.shape[-1])
        selected = hidden_states.gather(1, gather)
        if position_embeddings is not None:
            position_embeddings = tuple(_take(t, index) for t in position_embeddings)
        if position_ids is not None:
            position_ids = _take(position_ids.expand(batch, -1), index)
        out = self.layer(
            selected,
            _slice_mask(attention_mask, index),
            position_ids,
            position_embeddings=position_embeddings,
            **kwargs,
        )
        weight = (1 + scores.gather(1, index)).unsqueeze(-1)
        return hidden_states.scatter(1, gather, selected + weight * (out - selected))

    def __getattr__(self, name: str) -> Any:  # attention_type etc. that the model loop may read
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("layer"), name)


def _take(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tensor[b, index[b]]`` along dim 1 for a [batch, seq, ...] tensor (batch 1 broadcast)."""
    tensor = tensor.expand(index.shape[0], *tensor.shape[1:])
    shaped = index.view(*index.shape, *([1] * (tensor.dim() - 2))).expand(-1, -1, *tensor.shape[2:])
    return tensor.gather(1, shaped)


def _slice_mask(mask: Any, index: torch.Tensor) -> Any:
    """The 4-D [batch, 1, q, k] mask restricted to the selected queries and keys; None stays None."""
    if mask is None:
        return None  # SDPA's is_causal: causal among the kept tokens, which stay in order
    if not isinstance(mask, torch.Tensor) or mask.dim() != 4:
        raise ModelError(
            f"mixture_of_depths needs a 4-D tensor attention mask or none, got {type(mask).__name__}",
            "use attn_implementation sdpa or eager",
        )
    mask = mask.expand(index.shape[0], -1, -1, -1)
    rows = index[:, None, :, None].expand(-1, mask.shape[1], -1, mask.shape[3])
    mask = mask.gather(2, rows)
    cols = index[:, None, None, :].expand(-1, mask.shape[1], mask.shape[2], -1)
    return mask.gather(3, cols)


def _flatten_keys(module: nn.Module, state: dict[str, Any], prefix: str, _meta: Any) -> None:
    """Save the wrapped layer's weights under their original names, so the checkpoint loads as plain."""
    inner = prefix + "layer."
    for key in [k for k in state if k.startswith(inner)]:
        state[prefix + key[len(inner) :]] = state.pop(key)


def _nest_keys(module: nn.Module, state: dict[str, Any], prefix: str, *_args: Any) -> None:
    """The reverse of :func:`_flatten_keys` when a wrapped model loads its own state dict."""
    for key in [
        k for k in state if k.startswith(prefix) and not k.startswith((prefix + "layer.", prefix + "router."))
    ]:
        state[prefix + "layer." + key[len(prefix) :]] = state.pop(key)


def _decoder_layers(model: nn.Module) -> nn.ModuleList:
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ModelError(
            f"mixture_of_depths needs a decoder-only model with model.layers (Llama/Qwen2-style); "
            f"{type(model).__name__} has none",
            "remove mixture_of_depths or use a Llama/Qwen2/Mistral-style model",
        )
    return layers


def convert_to_mod(
    model: nn.Module, capacity: float = DEFAULT_CAPACITY, layers: list[int] | None = None
) -> nn.Module:
    """Wrap ``layers`` (default every other one, from 1) of ``model`` in fresh routers, in place."""
    decoder = _decoder_layers(model)
    if layers is None:
        layers = list(range(1, len(decoder), 2))
    for i in layers:
        if isinstance(decoder[i], MoDLayer):
            raise ModelError(f"layer {i} already routes (mixture_of_depths)", "use mixture_of_depths: load")
        decoder[i] = MoDLayer(decoder[i], model.config.hidden_size, capacity)
    setattr(model.config, CONFIG_KEY, {"capacity": capacity, "layers": list(layers)})
    return model


def load_mod(model: nn.Module, path: str | Path) -> nn.Module:
    """Re-apply the routing saved in ``path`` (config.json's mixture_of_depths + router weights)."""
    from safetensors import safe_open

    settings = getattr(model.config, CONFIG_KEY, None)
    if not isinstance(settings, dict):
        raise ModelError(
            f"{path} was not saved after mixture_of_depths: convert (config.json has no {CONFIG_KEY})",
            "use mixture_of_depths: convert to start routing from a plain model",
        )
    convert_to_mod(model, settings["capacity"], settings["layers"])
    path = Path(path)
    index = path / "model.safetensors.index.json"
    files = (
        sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if index.exists()
        else ["model.safetensors"]
    )
    wanted = {n: p for n, p in model.named_parameters() if ".router." in n}
    for name in files:
        with safe_open(str(path / name), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                if key in wanted:
                    with torch.no_grad():
                        wanted.pop(key).copy_(handle.get_tensor(key))
    if wanted:
        raise ModelError(
            f"router weights missing in {path}: {sorted(wanted)[:3]}", "re-save the converted model"
        )
    return model
