"""Write model weights in shards of at most `export_size` GB, with an index file when sharded.

safetensors is the default: it loads without running pickled code and memory-maps. The legacy
PyTorch .bin layout (`export_legacy_format`) is produced from the same shards, so both formats split
the tensors identically; transformers 5 itself only writes safetensors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SavedWeights", "save_weights", "shard_bytes", "weight_files"]

_SAFE_INDEX = "model.safetensors.index.json"
_BIN_INDEX = "pytorch_model.bin.index.json"


@dataclass(frozen=True)
class SavedWeights:
    """Which weight files an export wrote."""

    files: list[str]  # weight file names, in shard order
    index: str | None  # the index file name when sharded
    fmt: str  # "safetensors" or "bin"
    total_bytes: int

    @property
    def n_shards(self) -> int:
        return len(self.files)


def shard_bytes(export_size_gb: float) -> int:
    """export_size (GB, decimal as on the Hub and in transformers' "5GB") in bytes; at least 1."""
    return max(1, int(round(export_size_gb * 1e9)))


def weight_files(directory: Path) -> list[Path]:
    """Weight files (safetensors or .bin) in `directory`, sorted."""
    return sorted([*directory.glob("*.safetensors"), *directory.glob("*.bin")])


def save_weights(model: Any, directory: Path, *, max_shard_bytes: int, legacy: bool = False) -> SavedWeights:
    """save_pretrained `model` into `directory` in shards of at most `max_shard_bytes`.

    A single tensor larger than the limit gets a shard of its own (it cannot be split).
    """
    model.save_pretrained(str(directory), max_shard_size=max_shard_bytes)
    if legacy:
        _to_bin(directory)
    fmt = "bin" if legacy else "safetensors"
    index_name = _BIN_INDEX if legacy else _SAFE_INDEX
    index = index_name if (directory / index_name).is_file() else None
    files = [p for p in weight_files(directory) if p.suffix == (".bin" if legacy else ".safetensors")]
    return SavedWeights([p.name for p in files], index, fmt, sum(p.stat().st_size for p in files))


def _bin_name(safetensors_name: str) -> str:
    # model.safetensors -> pytorch_model.bin; model-00001-of-00003.safetensors -> pytorch_model-00001-of-00003.bin
    return "pytorch_" + safetensors_name.removesuffix(".safetensors") + ".bin"


def _to_bin(directory: Path) -> None:
    """Rewrite every safetensors shard (and the index) as the PyTorch .bin equivalent."""
    import torch
    from safetensors.torch import load_file

    for shard in sorted(directory.glob("model*.safetensors")):
        torch.save(load_file(str(shard)), directory / _bin_name(shard.name))
        shard.unlink()
    safe_index = directory / _SAFE_INDEX
    if safe_index.is_file():
        index = json.loads(safe_index.read_text(encoding="utf-8"))
        index["weight_map"] = {name: _bin_name(file) for name, file in index["weight_map"].items()}
        (directory / _BIN_INDEX).write_text(
            json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        safe_index.unlink()
