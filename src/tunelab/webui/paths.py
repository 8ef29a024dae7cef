"""Which folders the web UI may read and write: a path typed into a form must lie under an allowed root.

A browser user is not a shell user: without this, a path field would let anyone who reaches the UI
read or overwrite any file the server can. Allowed by default: the working directory, the runs
directory, tunelab's bundled data, ~/.cache/tunelab, and folders the operator adds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tunelab.errors import ConfigError

__all__ = ["PathGuard", "default_roots"]

# model names that are not paths
_NAMED_MODELS = ("smollm2", "minilm")


def default_roots(runs_dir: str | Path, extra: Iterable[str | Path] = ()) -> list[Path]:
    """cwd, the runs dir, tunelab's bundled data and cache, plus ``extra`` (resolved)."""
    from tunelab.data.registry import resolve_dataset_dir
    from tunelab.model.tiny import default_cache_root

    roots = [
        Path.cwd(),
        Path(runs_dir),
        resolve_dataset_dir("builtin"),
        default_cache_root(),
        *map(Path, extra),
    ]
    return [r.expanduser().resolve() for r in roots]


class PathGuard:
    """Checks that user-typed paths stay inside the allowed roots."""

    def __init__(self, roots: Iterable[str | Path]) -> None:
        self.roots: list[Path] = []
        for root in roots:
            self.add(root)

    def add(self, root: str | Path) -> None:
        resolved = Path(root).expanduser().resolve()
        if resolved not in self.roots:
            self.roots.append(resolved)

    def allows(self, path: str | Path) -> bool:
        resolved = Path(path).expanduser().resolve()
        return any(resolved == root or resolved.is_relative_to(root) for root in self.roots)

    def check(self, path: str | Path, key: str) -> Path:
        """``path`` resolved, or a ConfigError naming the field and the allowed roots."""
        if not self.allows(path):
            raise ConfigError(
                f"{key}={path}: outside the folders this web UI may use",
                "use a path under "
                + ", ".join(str(r) for r in self.roots)
                + " (start `tunelab webui --allow DIR` to add one)",
                code="path_outside",
                params={"key": key, "path": str(path), "roots": ", ".join(str(r) for r in self.roots)},
            )
        return Path(path).expanduser().resolve()

    def check_model(self, name: str, key: str = "model_name_or_path") -> None:
        """Model names (smollm2, tiny:*, minilm) pass; anything else is a path and must be allowed."""
        text = (name or "").strip()
        if text.startswith("tiny:") or text.lower() in _NAMED_MODELS:
            return
        self.check(text, key)

    def check_config(self, flat: dict[str, object]) -> None:
        """Every path-valued key of a flat config (data, model, adapters, outputs)."""
        if flat.get("model_name_or_path"):
            self.check_model(str(flat["model_name_or_path"]))
        for key in ("output_dir", "export_dir", "save_dir", "cache_dir", "reward_model", "task_dir"):
            value = flat.get(key)
            if value and value != "builtin":
                if key == "reward_model" and not (Path(str(value)).exists() or "/" in str(value)):
                    continue
                self.check(str(value), key)
        dataset_dir = flat.get("dataset_dir")
        if dataset_dir and dataset_dir != "builtin":
            self.check(str(dataset_dir), "dataset_dir")
        for key in ("adapter_name_or_path", "dataset", "eval_dataset"):
            for item in flat.get(key) or []:  # type: ignore[union-attr]
                text = str(item)
                # dataset names are registry names; only things that look like files are paths
                if key == "adapter_name_or_path" or "/" in text or Path(text).suffix:
                    self.check(text, key)
        calibration = str(flat.get("export_quantization_dataset") or "")
        if "/" in calibration or Path(calibration).suffix:  # a file, not a registry name
            self.check(calibration, "export_quantization_dataset")
