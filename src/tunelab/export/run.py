"""``export(config)``: merge, save in shards, copy tokenizer and template, verify, write the card.

The story: find the trained model (a run directory, or a config's adapters) -> load it with the
adapters merged, in the export dtype, on export_device -> write weights in shards (safetensors, or
.bin on request, or quantized: bitsandbytes on a GPU, or GPTQ calibrated on
export_quantization_dataset) plus tokenizer, chat template and generation config into a staging
folder that becomes export_dir only when complete -> reload it with plain transformers and compare
logits with the unmerged model -> export_report.json and README.md.
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
    push: bool = True,
    hub_private: bool | None = None,
    hub_token: str | None = None,
    console: Any = None,
) -> ExportResult:
    """Export the model a config or run directory describes; see the module docstring.

    With export_hub_model_id set (and ``push``), the verified export is then pushed to that Hub repo
    (``hub_private``: create it private; ``hub_token``: else HF_TOKEN or a saved login).

    from tunelab import export
    result = export(run="runs/sft-lora-tiny", overrides=["export_size=1"])
    print(result.export_dir, result.verification.max_abs_diff)
    """
    cfg, run_dir, base_model = resolve_export_config(config, overrides, run=run, model=model, adapter=adapter)
    settings = cfg.export
    export_dir = _export_dir(cfg, run_dir)
    repo_id = settings.export_hub_model_id if push else None
    if repo_id:
        from tunelab.export.hub import require_hub_token

        require_hub_token(repo_id, hub_token)  # before any heavy work
    if settings.export_quantization_bit is not None:
        from tunelab.export.quantize import check_quantized_export_supported

        # before any heavy work
        check_quantized_export_supported(
            settings.export_quantization_bit, settings.export_quantization_method
        )
    source = _Source(cfg, run_dir, base_model)
    _check_target(export_dir, source)

    from tunelab.data.template import template_for
    from tunelab.export.chat_template import template_to_jinja
    from tunelab.export.merge import load_merged_model, resolve_export_device, resolve_export_dtype

    dtype = resolve_export_dtype(cfg)
    device, device_note = resolve_export_device(settings.export_device)
    if device_note:
        _say(console, device_note)
    adapters = cfg.model.adapter_name_or_path or []
    what = (
        f"{cfg.model.model_name_or_path} + {len(adapters)} adapter(s), merging"
        if adapters
        else cfg.model.model_name_or_path
    )
    tokenizer = _load_tokenizer(cfg)
    template = template_for(cfg.data, tokenizer)
    calibration = _calibration(cfg, tokenizer, template, console)  # data errors before the model loads
    jinja = template_to_jinja(template, tokenizer)
    if jinja is not None:
        tokenizer.chat_template = jinja
    _say(console, f"loading {what} in {dtype} on {device}")
    model = load_merged_model(cfg, dtype, device)
    _set_generation_ids(model, template.stop_token_ids(tokenizer), tokenizer.pad_token_id)

    staging = export_dir.with_name(export_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    weights = _write(model, staging, cfg, dtype, device, (tokenizer, calibration), console)
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
        verification = _verify(cfg, export_dir, tokenizer, template, dtype, device, console)
    report = _report(
        source, export_dir, weights, dtype, template.name if jinja else "tokenizer's own", verification
    )
    report.update(_quantization_facts(settings, device, calibration))
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
    if repo_id:
        _push(export_dir, report, repo_id, hub_private, hub_token, console)
    return ExportResult(export_dir, report, verification)


def _push(
    export_dir: Path,
    report: dict[str, Any],
    repo_id: str,
    private: bool | None,
    token: str | None,
    console: Any,
) -> None:
    """Push the export and record the outcome (URL or error) in export_report.json."""
    from tunelab.errors import TunelabError
    from tunelab.export.hub import push_export

    _say(console, f"pushing {export_dir} to the Hub repo {repo_id}")
    outcome: dict[str, Any] = {"repo_id": repo_id, "private": bool(private)}
    try:
        outcome["url"] = push_export(export_dir, repo_id, private=private, token=token)
    except TunelabError as err:
        outcome.update(error=err.message, hint=err.hint)
        raise
    finally:
        report["hub_push"] = outcome
        (export_dir / _REPORT).write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    _say(console, f"pushed: {outcome['url']}")


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


def _calibration(cfg: RunConfig, tokenizer: Any, template: Any, console: Any) -> list[str] | None:
    """GPTQ's calibration texts (export_quantization_dataset), or None for other exports."""
    settings = cfg.export
    if settings.export_quantization_method != "gptq" or settings.export_quantization_bit is None:
        return None
    from tunelab.export.calibration import calibration_texts

    texts = calibration_texts(
        str(settings.export_quantization_dataset),
        tokenizer,
        template,
        dataset_dir=cfg.data.dataset_dir,
        n_samples=settings.export_quantization_nsamples,
        max_len=settings.export_quantization_maxlen,
        seed=cfg.training.seed,
    )
    _say(
        console,
        f"calibration: {len(texts)} sample(s) of {settings.export_quantization_dataset}, "
        f"at most {settings.export_quantization_maxlen} tokens each",
    )
    return texts


def _write(
    model: Any,
    staging: Path,
    cfg: RunConfig,
    dtype: str,
    device: str,
    calibration: tuple[Any, list[str] | None],
    console: Any,
) -> Any:
    from tunelab.export.merge import torch_dtype
    from tunelab.export.save import save_weights, shard_bytes

    settings = cfg.export
    limit = shard_bytes(settings.export_size)
    bits = settings.export_quantization_bit
    if bits is None:
        return save_weights(model, staging, max_shard_bytes=limit, legacy=settings.export_legacy_format)
    from tunelab.export import quantize

    full = staging / ".full-precision"
    save_weights(model, full, max_shard_bytes=shard_bytes(1000))
    tokenizer, texts = calibration
    if settings.export_quantization_method == "gptq":
        _say(console, f"quantizing to {bits} bits with GPTQ on {device}")
        config = quantize.build_gptq_config(
            bits,
            texts or [],
            tokenizer,
            max_len=settings.export_quantization_maxlen,
            group_size=quantize.gptq_group_size(model),
        )
        quantized = quantize.load_gptq_quantized(full, config, torch_dtype(dtype), device)
    else:
        _say(console, f"quantizing to {bits} bits with bitsandbytes")
        quantized = quantize.load_quantized(full, bits, torch_dtype(dtype))
    weights = save_weights(quantized, staging, max_shard_bytes=limit)
    shutil.rmtree(full)
    return weights


def _verify(
    cfg: RunConfig, export_dir: Path, tokenizer: Any, template: Any, dtype: str, device: str, console: Any
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
        quantized_device=device if cfg.export.export_quantization_method == "gptq" else 0,
    )
    return result


def _quantization_facts(settings: Any, device: str, calibration: list[str] | None) -> dict[str, Any]:
    """Where the export ran and how it was quantized, for export_report.json and the model card."""
    quantized = settings.export_quantization_bit is not None
    facts: dict[str, Any] = {
        "export_device": settings.export_device,
        "device": device,
        "quantization_method": settings.export_quantization_method if quantized else None,
        "calibration": None,
    }
    if calibration is not None:
        facts["calibration"] = {
            "dataset": settings.export_quantization_dataset,
            "n_samples": len(calibration),
            "nsamples_requested": settings.export_quantization_nsamples,
            "maxlen": settings.export_quantization_maxlen,
        }
    return facts


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
