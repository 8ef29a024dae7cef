"""PiSSA adapters that reload and export exactly: a fixed SVD seed, and a plain LoRA delta at save.

PiSSA (Meng et al., 2024) starts LoRA from the principal singular vectors of each weight and
*changes the base weight* to the residual ``W_res = W - B0 A0``. Two consequences a run must handle:

- The saved adapter's ``B A`` only reproduces the trained model on top of ``W_res``, not on top of the
  original base weights every other tool loads. PEFT reloads such an adapter by re-running the PiSSA
  initialisation, and its fast SVD (``pissa_iter`` >= 0) draws random vectors, so each reload built a
  different ``W_res``: the reloaded model changed every time and the export failed its verification.
- PEFT's remedy (``save_pretrained(path_initial_model_for_weight_conversion=...)``) writes the trained
  update as a plain LoRA delta ``dW = B A - B0 A0`` of rank ``2r`` that applies to the original base.

tunelab does both for every PiSSA run: the initialisation runs under a fixed seed (so a resumed run
and a reloaded checkpoint build the same ``W_res``), and the run's final adapter is always converted
(``pissa_convert: true`` additionally keeps the unconverted adapter in ``pissa_backup/``, as
LLaMA-Factory does). The initial adapter is kept in ``pissa_init/``: it is what the conversion
subtracts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "PISSA_SEED",
    "fixed_pissa_seed",
    "is_pissa",
    "pissa_init_weights",
    "remember_initial_adapter",
    "save_pissa_as_lora",
]

PISSA_SEED = 0  # any fixed value works: what matters is that every initialisation uses the same one
_INITIAL = "tunelab_pissa_initial_state"  # attribute of the PeftModel holding B0, A0


def pissa_init_weights(pissa_iter: int) -> str:
    """PEFT's ``init_lora_weights`` value for ``pissa_iter`` (-1: exact SVD, else fast-SVD iterations)."""
    return "pissa" if pissa_iter == -1 else f"pissa_niter_{pissa_iter}"


def is_pissa(init_lora_weights: object) -> bool:
    """Whether a LoRA config's ``init_lora_weights`` asks for a PiSSA initialisation."""
    return str(init_lora_weights).lower().startswith("pissa")


@contextlib.contextmanager
def fixed_pissa_seed() -> Iterator[None]:
    """Run the block (a PiSSA initialisation) with the global torch RNG seeded, then restore it."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PISSA_SEED)
        yield


def remember_initial_adapter(model: Any, *, keep_backup: bool) -> None:
    """Keep a copy of the freshly initialised adapter (B0, A0) on ``model`` for the conversion at save.

    ``keep_backup`` (``pissa_convert``): the save also keeps the unconverted adapter.
    """
    from peft import get_peft_model_state_dict

    state = {name: tensor.detach().clone() for name, tensor in get_peft_model_state_dict(model).items()}
    setattr(model, _INITIAL, (state, keep_backup))


def save_pissa_as_lora(model: Any, output_dir: Path) -> bool:
    """Overwrite the adapter in ``output_dir`` with its plain-LoRA form; False if ``model`` is no PiSSA run.

    Writes ``pissa_init/`` (the initial adapter the conversion subtracts) and, when the run asked for
    ``pissa_convert``, ``pissa_backup/`` (the trained adapter as PiSSA, for use on ``W_res``).
    """
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    remembered: tuple[dict[str, torch.Tensor], bool] | None = getattr(model, _INITIAL, None)
    if remembered is None:
        return False
    initial, keep_backup = remembered
    init_dir = output_dir / "pissa_init"
    init_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in initial.items()}, str(init_dir / "adapter_model.safetensors"))
    if keep_backup:
        model.save_pretrained(str(output_dir / "pissa_backup"))
    model.save_pretrained(str(output_dir), path_initial_model_for_weight_conversion=str(init_dir))
    # PEFT's conversion keeps only the LoRA matrices: put back what trains in full (additional_target,
    # a classification head), which applies to the original base unchanged.
    weights = output_dir / "adapter_model.safetensors"
    converted = load_file(str(weights))
    extra = {k: v.contiguous() for k, v in get_peft_model_state_dict(model).items() if k not in converted}
    if extra:
        save_file({**converted, **extra}, str(weights), metadata={"format": "pt"})
    return True
