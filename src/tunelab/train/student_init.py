"""A shallower student made of a model's own layers (DistilBERT's initialisation), saved as a model directory.

DistilBERT (Sanh et al. 2019) started its 6-layer student from every other layer of 12-layer BERT: the
student begins close to the teacher instead of from random weights, which is most of why it learns
quickly. ``kd_student_init: every_other_layer`` keeps layers 0, 2, 4, ...; ``first_n:K`` keeps the
first K. Embeddings, final norm and output head are copied as they are, so the student shares the
teacher's tokenizer and vocabulary and can be distilled with stage kd.

Two ways in: ``tunelab data init-student CFG -o DIR`` (:func:`init_student`), or ``kd_student_init`` in
a stage kd config, where ``tunelab train`` builds the student into ``<output_dir>/student_init/`` and
trains it (:func:`prepare_student`): rank 0 writes it, the other ranks wait and load it, and a resumed
run reuses it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelab import distributed
from tunelab.config.schema_kd import parse_student_init
from tunelab.errors import ConfigError, ModelError

__all__ = ["STUDENT_DIR", "STUDENT_INIT_FILE", "init_student", "prepare_student", "shrink_layers"]

STUDENT_INIT_FILE = "student_init.json"
STUDENT_DIR = "student_init"  # inside the run directory, when kd_student_init is set for `tunelab train`


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
    _layers_to_keep(config, spec)  # a K too large is refused before the teacher's weights load
    fp32 = config.model_copy(update={"kd": config.kd.model_copy(update={"teacher_compute_type": "fp32"})})
    engine = load_teacher(fp32)
    model = engine.model
    n_layers = int(model.config.num_hidden_layers)
    keep = _keep(spec, n_layers)
    shrink_layers(model, keep)
    model.config.use_cache = True
    model.save_pretrained(out)
    engine.tokenizer.padding_side = "right"
    engine.tokenizer.save_pretrained(out)
    record = {"source": teacher_name(config), "spec": spec, "source_layers": n_layers, "kept_layers": keep}
    (out / STUDENT_INIT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out


def _keep(spec: str, n_layers: int) -> list[int]:
    try:
        return parse_student_init(spec, n_layers)
    except ValueError as err:
        raise ConfigError(
            str(err), "use every_other_layer or first_n:K with K below the layer count"
        ) from None


def _layers_to_keep(config: Any, spec: str) -> list[int]:
    """The teacher layers ``spec`` keeps, read from the teacher's config.json (no weights loaded)."""
    from tunelab.infer.teacher import teacher_config
    from tunelab.model.resolve import resolve_model_path

    model = teacher_config(config).model
    path = resolve_model_path(model.model_name_or_path, model.cache_dir)
    values = json.loads((path / "config.json").read_text(encoding="utf-8"))
    n_layers = values.get("num_hidden_layers") or values.get("text_config", {}).get("num_hidden_layers")
    if not isinstance(n_layers, int):
        raise ModelError(
            f"{path}/config.json does not say how many layers the teacher has (num_hidden_layers)",
            "kd_student_init needs a decoder model with num_hidden_layers in its config",
        )
    return _keep(spec, n_layers)


def _check_student_source(config: Any, student_dir: Path) -> None:
    """Refuse a model_name_or_path that kd_student_init would silently replace by the built student.

    Accepted: the teacher itself, the base model of a teacher run directory, or the student directory
    (what the run's config.yaml records, so that a resumed run reads the same config).
    """
    from tunelab.infer.teacher import teacher_config

    kd, given = config.kd, config.model.model_name_or_path
    if Path(given).expanduser().resolve() == student_dir.resolve():
        return
    if given in (kd.teacher_model_name_or_path, teacher_config(config).model.model_name_or_path):
        return
    raise ConfigError(
        f"kd_student_init={kd.kd_student_init} builds the student from the teacher's layers "
        f"({kd.teacher_model_name_or_path}), so model_name_or_path={given} would not be trained",
        f"set model_name_or_path={kd.teacher_model_name_or_path} (the student then starts from the teacher), "
        f"or remove kd_student_init to distil into {given}",
    )


def _record_of(student_dir: Path) -> dict[str, Any] | None:
    """The student_init.json of a complete student directory, or None."""
    try:
        if (student_dir / "config.json").is_file():
            return json.loads((student_dir / STUDENT_INIT_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        pass  # a directory torn by a killed build counts as absent
    return None


def prepare_student(
    config: Any, run_dir: Path, *, resuming: bool, event: Callable[..., Any], say: Callable[[str], None]
) -> Any:
    """``config`` training the student kd_student_init builds from the teacher into ``run_dir``/student_init.

    Rank 0 builds it (into a temporary folder renamed when complete, so a killed build never looks
    finished) while the other ranks wait (:func:`tunelab.distributed.main_process_first`), then every
    rank loads the same directory. A resumed run reuses the student its checkpoints were trained from;
    a fresh run builds it again. ``event(kind, message, **data)`` records what was done.
    """
    from tunelab.infer.teacher import teacher_name

    spec, out = config.kd.kd_student_init, Path(run_dir) / STUDENT_DIR
    _check_student_source(config, out)
    wanted = {"source": teacher_name(config), "spec": spec}
    with distributed.main_process_first():  # (every rank checks: a refusal ends them all alike)
        _layers_to_keep(config, spec)
        record = _record_of(out)
        matches = record is not None and {k: record.get(k) for k in wanted} == wanted
        if resuming and record is not None and not matches:
            raise ConfigError(
                f"{out} holds the student of {record.get('spec')} from {record.get('source')}, but this run asks "
                f"for {spec} from {wanted['source']}: its checkpoints were trained from the other student",
                "resume with the config the run started with (its config.yaml), or start a new output_dir",
            )
        if distributed.is_writer() and not (resuming and matches):
            partial = out.with_name(f"{STUDENT_DIR}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            init_student(config, partial, spec=spec)
            shutil.rmtree(out, ignore_errors=True)
            partial.rename(out)
            record = _record_of(out)
            message = (
                f"built the student ({spec} of {wanted['source']}: layers {record['kept_layers']}) in {out}"  # type: ignore[index]
            )
            event("student_init", message, path=str(out), **record)  # type: ignore[arg-type]
            say(message)
        elif distributed.is_writer():
            event(
                "student_init", f"reusing the student in {out} ({spec} of {wanted['source']})", path=str(out)
            )
            say(f"student: reusing {out}")
        elif not matches:
            raise ModelError(
                f"rank {distributed.rank()} finds no complete student in {out} after rank 0 built it",
                "every rank reads the student from the run directory: put output_dir on a disk all nodes share",
            )
    model = config.model.model_copy(update={"model_name_or_path": str(out)})
    return config.model_copy(update={"model": model})
