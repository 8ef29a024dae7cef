"""A shallower student made of a model's own layers (DistilBERT's initialisation), saved as a model directory.

DistilBERT (Sanh et al. 2019) started its 6-layer student from every other layer of 12-layer BERT: the
student begins close to the teacher instead of from random weights, which is most of why it learns
quickly. ``kd_student_init: every_other_layer`` keeps layers 0, 2, 4, ...; ``first_n:K`` keeps the
first K. Embeddings, final norm and output head are copied as they are, so the student shares the
teacher's tokenizer and vocabulary and can be distilled with stage kd.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.config.schema_kd import parse_student_init
from tunelab.errors import ConfigError

__all__ = ["STUDENT_INIT_FILE", "init_student", "shrink_layers"]

STUDENT_INIT_FILE = "student_init.json"


def shrink_layers(model: Any, keep: list[int]) -> Any:
    """``model`` with only the decoder layers ``keep`` (in order), its config and layer indices updated."""
    import torch

    from tunelab.model.adapters import find_decoder_layers

    prefix, _ = find_decoder_layers(model)
    parent_name, _, attr = prefix.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    layers = getattr(parent, attr)
    setattr(parent, attr, torch.nn.ModuleList([layers[i] for i in keep]))
    for new_index, layer in enumerate(getattr(parent, attr)):
        for module in layer.modules():  # attention modules index their KV-cache slot by layer
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    config = model.config
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[i] for i in keep]
    config.num_hidden_layers = len(keep)
    return model


def init_student(config: Any, out_dir: str | Path, *, spec: str | None = None) -> Path:
    """Build the student from ``config``'s teacher (adapters merged) with ``spec`` (default kd_student_init).

    Writes a normal model directory (config.json, safetensors, tokenizer) plus student_init.json
    recording the source and the layers kept; returns ``out_dir``.
    """
    from tunelab.infer.teacher import load_teacher, teacher_name

    spec = spec or config.kd.kd_student_init
    if not spec:
        raise ConfigError(
            "no layer selection for the student",
            "set kd_student_init: every_other_layer (or first_n:K), or --layers",
        )
    out = Path(out_dir)
    if (out / "config.json").is_file():
        raise ConfigError(f"{out} already holds a model", "choose another -o DIR or delete it")
    fp32 = config.model_copy(update={"kd": config.kd.model_copy(update={"teacher_compute_type": "fp32"})})
    engine = load_teacher(fp32)
    model = engine.model
    n_layers = int(model.config.num_hidden_layers)
    try:
        keep = parse_student_init(spec, n_layers)
    except ValueError as err:
        raise ConfigError(
            str(err), "use every_other_layer or first_n:K with K below the layer count"
        ) from None
    shrink_layers(model, keep)
    model.config.use_cache = True
    model.save_pretrained(out)
    engine.tokenizer.padding_side = "right"
    engine.tokenizer.save_pretrained(out)
    record = {"source": teacher_name(config), "spec": spec, "source_layers": n_layers, "kept_layers": keep}
    (out / STUDENT_INIT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out
