"""`infer_backend: vllm | sglang`: hand serving to those engines' own OpenAI-compatible servers.

Both are GPU engines that tunelab does not install. Where the package and a CUDA GPU are present,
`tunelab api` runs the engine's server on the same host, port, key and model name; elsewhere it
stops before loading anything, naming the package, the GPU it needs, and the default backend.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import TYPE_CHECKING

from tunelab.errors import ConfigError, ResourceError

if TYPE_CHECKING:
    from tunelab.config import RunConfig

__all__ = ["backend_command", "check_backend", "run_backend"]

_PACKAGES = {"vllm": "vllm", "sglang": "sglang"}


def check_backend(backend: str) -> None:
    """ResourceError unless `backend`'s package is installed and a CUDA GPU is visible."""
    package = _PACKAGES[backend]
    if importlib.util.find_spec(package) is None:
        raise ResourceError(
            f"infer_backend: {backend} needs the '{package}' package, which is not installed "
            f"({backend} serves on a CUDA GPU)",
            f"on a machine with an NVIDIA GPU: pip install {package}; "
            "anywhere else use infer_backend: huggingface (tunelab's own batching engine)",
        )
    import torch

    if not torch.cuda.is_available():
        raise ResourceError(
            f"infer_backend: {backend} needs a CUDA GPU, and none is visible",
            "use infer_backend: huggingface (tunelab's own batching engine, works on CPU)",
        )


def backend_command(
    config: RunConfig, *, host: str, port: int, api_key: str | None, model_id: str | None
) -> list[str]:
    """The command line that starts `config.model.infer_backend`'s server for this model."""
    model = config.model
    backend = model.infer_backend
    if model.model_name_or_path.startswith(
        ("tiny:", "smollm2", "minilm")
    ) or model.model_name_or_path.endswith(".gguf"):
        raise ConfigError(
            f"infer_backend: {backend} serves model directories; {model.model_name_or_path!r} is not one",
            "export the model first (`tunelab export`), or use infer_backend: huggingface",
        )
    adapters = model.adapter_name_or_path or []
    name = model_id or model.model_name_or_path
    if backend == "vllm":
        command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model.model_name_or_path,
                   "--host", host, "--port", str(port), "--served-model-name", name]  # fmt: skip
        if adapters:
            command += [
                "--enable-lora",
                "--lora-modules",
                *(f"adapter{i}={a}" for i, a in enumerate(adapters)),
            ]
        if api_key:
            command += ["--api-key", api_key]
    else:
        if len(adapters) > 1:
            raise ConfigError(
                "infer_backend: sglang serves one adapter", "merge them with `tunelab export` first"
            )
        command = [sys.executable, "-m", "sglang.launch_server", "--model-path", model.model_name_or_path,
                   "--host", host, "--port", str(port), "--served-model-name", name]  # fmt: skip
        if adapters:
            command += ["--lora-paths", f"adapter0={adapters[0]}"]
        if api_key:
            command += ["--api-key", api_key]
    if model.trust_remote_code:
        command.append("--trust-remote-code")
    return command


def run_backend(
    config: RunConfig, *, host: str, port: int, api_key: str | None, model_id: str | None
) -> None:
    """Check the backend, then run its server in the foreground until it exits (Ctrl-C stops it)."""
    check_backend(config.model.infer_backend)
    command = backend_command(config, host=host, port=port, api_key=api_key, model_id=model_id)
    try:
        subprocess.run(command, check=True)
    except subprocess.CalledProcessError as exc:
        raise ResourceError(
            f"the {config.model.infer_backend} server exited with code {exc.returncode}",
            "its own messages above say why; infer_backend: huggingface is the fallback",
        ) from None
