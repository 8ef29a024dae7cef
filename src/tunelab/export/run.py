"""``export(config)``: merge, save in shards, copy tokenizer and template, verify, write the card.

The story: find the trained model (a run directory, or a config's adapters) -> load it with the
adapters merged, in the export dtype -> write weights in shards (safetensors, or .bin on request,
or bitsandbytes-quantized on a GPU) plus tokenizer, chat template and generation config into a
staging folder that becomes export_dir only when complete -> reload it with plain transformers and
compare logits with the unmerged model -> export_report.json and README.md.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig
from tunelab.errors import ConfigError, ModelError
from tunelab.export.verify import VerifyResult

__all__ = ["ExportResult", "export_model", "resolve_export_config"]

_REPORT = "export_report.json"


@dataclass(frozen=True)
class ExportResult:
    """Where the export went and what it contains (the same facts as export_report.json)."""

    export_dir: Path
    report: dict[str, Any]
    verification: VerifyResult | None

    @property
    def n_shards(self) -> int:
        return int(self.report["n_shards"])


@dataclass(frozen=True)
class _Source:
    config: RunConfig
    run_dir: Path | None
    base_model: str


def resolve_export_config(
    config: str | Path | RunConfig | None = None,
    overrides: Sequence[str] = (),
    *,
    run: str | Path | None = None,
    model: str | None = None,
    adapter: str | Sequence[str] | None = None,
) -> tuple[RunConfig, Path | None, str]:
    """(config of the model to export, its run directory or None, the base model's name).

    A training config whose output_dir holds a finished run exports that run's weights (with the
    config's export_* keys); a config with adapter_name_or_path (or `adapter`) merges those adapters.
    """
    from tunelab.config import load_config
    from tunelab.infer.source import find_run_dir, is_run_dir, resolve_config, run_config

    if run is None and config is not None and not isinstance(config, RunConfig) and Path(config).is_dir():
        run, config = config, None
    if run is not None:
        resolved = resolve_config(config, overrides, run=run, model=model, adapter=adapter)
        run_dir = find_run_dir(run)
        return resolved, run_dir, load_config(run_dir / "config.yaml").model.model_name_or_path
    resolved = resolve_config(config, overrides, model=model, adapter=adapter)
    out = resolved.output.output_dir
    trained_here = out and model is None and is_run_dir(out) and _has_final_weights(Path(out))
    if trained_here and not resolved.model.adapter_name_or_path:
        trained = run_config(out)
        export = resolved.export
        return trained.model_copy(update={"export": export}), Path(out), resolved.model.model_name_or_path
    return resolved, None, resolved.model.model_name_or_path


def _has_final_weights(path: Path) -> bool:
    return (path / "adapter_config.json").is_file() or (path / "config.json").is_file()


def _say(console: Any, message: str) -> None:
    if console is not None:
        console.print(message, highlight=False)


def export_model(
    config: str | Path | RunConfig | None = None,
    overrides: Sequence[str] = (),
    *,
    run: str | Path | None = None,
    model: str | None = None,
    adapter: str | Sequence[str] | None = None,
    console: Any = None,
) -> ExportResult:
    """Export the model a config or run directory describes; see the module docstring.

    from tunelab import export
    result = export(run="runs/sft-lora-tiny", overrides=["export_size=1"])
    print(result.export_dir, result.verification.max_abs_diff)
    """
    cfg, run_dir, base_model = resolve_export_config(config, overrides, run=run, model=model, adapter=adapter)
    settings = cfg.export
    export_dir = _export_dir(cfg, run_dir)
    if settings.export_quantization_bit is not None:
        from tunelab.export.quantize import check_quantized_export_supported

        check_quantized_export_supported(settings.export_quantization_bit)  # before any heavy work
    source = _Source(cfg, run_dir, base_model)
    _check_target(export_dir, source)

    from tunelab.data.template import get_template
    from tunelab.export.chat_template import template_to_jinja
    from tunelab.export.merge import load_merged_model, resolve_export_dtype

    dtype = resolve_export_dtype(cfg)
    adapters = cfg.model.adapter_name_or_path or []
    what = (
        f"{cfg.model.model_name_or_path} + {len(adapters)} adapter(s), merging"
        if adapters
        else cfg.model.model_name_or_path
    )
    _say(console, f"loading {what} in {dtype}")
    tokenizer = _load_tokenizer(cfg)
    template = get_template(cfg.data.template, tokenizer).with_options(
        default_system=cfg.data.default_system, tool_format=cfg.data.tool_format
    )
    jinja = template_to_jinja(template, tokenizer)
    if jinja is not None:
        tokenizer.chat_template = jinja
    model = load_merged_model(cfg, dtype)
    _set_generation_ids(model, template.stop_token_ids(tokenizer), tokenizer.pad_token_id)

    staging = export_dir.with_name(export_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    weights = _write(model, staging, cfg, dtype, console)
    del model
    tokenizer.save_pretrained(str(staging))
    if export_dir.exists():  # a previous export (checked by _check_target)
        shutil.rmtree(export_dir)
    staging.rename(export_dir)
    _say(
        console,
        f"wrote {weights.n_shards} {weights.fmt} shard(s), {weights.total_bytes / 1e6:.1f} MB -> {export_dir}",
    )

    verification = None
    if settings.export_verify:
        verification = _verify(cfg, export_dir, tokenizer, template, dtype, console)
    report = _report(
        source, export_dir, weights, dtype, template.name if jinja else "tokenizer's own", verification
    )
    (export_dir / _REPORT).write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    from tunelab.export.card import write_export_card
    from tunelab.runs.rundir import RunDir

    write_export_card(export_dir, report, RunDir(run_dir).read_metrics() if run_dir else {})
    if verification is not None and not verification.passed:
        raise ModelError(
            f"the export in {export_dir} does not reproduce the source model: {verification.describe()}",
            "see export_report.json; a wider dtype (export_dtype=fp32) rounds less, and a model whose "
            "logits are huge may need it",
        )
    return ExportResult(export_dir, report, verification)


def _export_dir(cfg: RunConfig, run_dir: Path | None) -> Path:
    if cfg.export.export_dir:
        return Path(cfg.export.export_dir)
    if run_dir is not None:
        return run_dir / "export"
    raise ConfigError(
        "export_dir is not set and there is no run directory to put the export in",
        "add export_dir=<folder> (or export a run: tunelab export --run runs/<name>)",
    )


def _check_target(export_dir: Path, source: _Source) -> None:
    """Refuse to write over the source weights or over a folder that is not a previous export."""
    from tunelab.export.merge import model_dir_of

    target = export_dir.resolve()
    protected = [
        model_dir_of(source.config),
        *(Path(a) for a in source.config.model.adapter_name_or_path or []),
    ]
    if source.run_dir is not None:
        protected.append(source.run_dir)
    for path in protected:
        if target == path.resolve():
            raise ConfigError(
                f"export_dir={export_dir} is the source model's own directory",
                "choose a new folder, e.g. export_dir=<run>/export",
            )
    if export_dir.is_dir() and any(export_dir.iterdir()) and not (export_dir / _REPORT).is_file():
        raise ConfigError(
            f"export_dir={export_dir} already holds files that are not a tunelab export",
            "choose an empty or new folder (a previous tunelab export there is replaced)",
        )


def _load_tokenizer(cfg: RunConfig) -> Any:
    """The tokenizer the run saved beside its adapter (it may differ from the base's), else the base's."""
    from tunelab.model import load_tokenizer

    adapters = cfg.model.adapter_name_or_path or []
    if adapters and (Path(adapters[-1]) / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(adapters[-1], trust_remote_code=cfg.model.trust_remote_code)
    return load_tokenizer(cfg.model)


def _set_generation_ids(model: Any, stop_ids: list[int], pad_id: int | None) -> None:
    """Make plain `model.generate` stop where the chat template ends a reply."""
    if stop_ids:
        model.generation_config.eos_token_id = stop_ids[0] if len(stop_ids) == 1 else stop_ids
    if pad_id is not None:
        model.generation_config.pad_token_id = pad_id


def _write(model: Any, staging: Path, cfg: RunConfig, dtype: str, console: Any) -> Any:
    from tunelab.export.merge import torch_dtype
    from tunelab.export.save import save_weights, shard_bytes

    settings = cfg.export
    limit = shard_bytes(settings.export_size)
    bits = settings.export_quantization_bit
    if bits is None:
        return save_weights(model, staging, max_shard_bytes=limit, legacy=settings.export_legacy_format)
    from tunelab.export.quantize import load_quantized

    full = staging / ".full-precision"
    save_weights(model, full, max_shard_bytes=shard_bytes(1000))
    _say(console, f"quantizing to {bits} bits with bitsandbytes")
    quantized = load_quantized(full, bits, torch_dtype(dtype))
    weights = save_weights(quantized, staging, max_shard_bytes=limit)
    shutil.rmtree(full)
    return weights


def _verify(
    cfg: RunConfig, export_dir: Path, tokenizer: Any, template: Any, dtype: str, console: Any
) -> VerifyResult:
    from tunelab.export.merge import load_reference_model
    from tunelab.export.verify import verification_prompts, verify_export

    _say(console, "verifying: loading the export with plain transformers and comparing logits")
    reference = load_reference_model(cfg)
    bits = cfg.export.export_quantization_bit
    result = verify_export(
        export_dir,
        reference,
        verification_prompts(tokenizer, template),
        precision=f"{bits}bit" if bits else dtype,
    )
    return result


def _report(
    source: _Source,
    export_dir: Path,
    weights: Any,
    dtype: str,
    chat_template: str,
    verification: VerifyResult | None,
) -> dict[str, Any]:
    from tunelab import __version__

    cfg = source.config
    settings = cfg.export
    return {
        "export_dir": str(export_dir.resolve()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "tunelab_version": __version__,
        "source": {
            "model": cfg.model.model_name_or_path,
            "base_model": source.base_model,
            "adapters": [str(Path(a).resolve()) for a in cfg.model.adapter_name_or_path or []],
            "run_dir": str(source.run_dir.resolve()) if source.run_dir else None,
            "stage": cfg.finetuning.stage,
            "finetuning_type": cfg.finetuning.finetuning_type,
        },
        "dtype": dtype,
        "format": weights.fmt,
        "files": weights.files,
        "index": weights.index,
        "n_shards": weights.n_shards,
        "total_bytes": weights.total_bytes,
        "export_size_gb": settings.export_size,
        "quantization_bit": settings.export_quantization_bit,
        "hub_model_id": settings.export_hub_model_id,
        "chat_template": chat_template,
        "verification": verification.as_dict() if verification is not None else None,
    }
