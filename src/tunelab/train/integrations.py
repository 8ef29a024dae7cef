"""Logging integrations (``report_to``): check the package is there before the run starts.

transformers only notices a missing tensorboard/wandb/mlflow when the Trainer builds its
callbacks, with an error that does not say which config key asked for it. Checking here turns
that into a ResourceError naming ``report_to`` and the ``pip install`` that fixes it, before
any model is loaded. Only the presence of the module is checked (importlib's find_spec): the
integrations are not imported, so nothing connects anywhere at this point.

Where each one writes: tensorboard event files go to ``<run dir>/runs/<time>_<host>``
(transformers' default); mlflow logs to ``./mlruns`` unless MLFLOW_TRACKING_URI says otherwise;
wandb follows its own settings (``WANDB_MODE=offline`` keeps it local).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec

from tunelab.errors import ConfigError, ResourceError

__all__ = ["INTEGRATION_PACKAGES", "resolve_report_to"]

# integration -> (modules any of which makes it work, what to install)
INTEGRATION_PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    # torch's SummaryWriter needs the tensorboard package; transformers falls back to tensorboardX
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
}


def _is_installed(modules: Sequence[str]) -> bool:
    return any(find_spec(module) is not None for module in modules)


def resolve_report_to(report_to: Sequence[str]) -> list[str]:
    """The integrations to hand to TrainingArguments(report_to=...): [] for none.

    Raises ResourceError when a requested integration's package is not installed, and
    ConfigError for a name tunelab does not know (the config schema normally catches that first).
    """
    wanted = [name for name in dict.fromkeys(report_to) if name != "none"]
    unknown = [name for name in wanted if name not in INTEGRATION_PACKAGES]
    if unknown:
        raise ConfigError(
            f"report_to={','.join(report_to)}: unknown integration {', '.join(unknown)}",
            f"choose from none, {', '.join(INTEGRATION_PACKAGES)}",
        )
    missing = [name for name in wanted if not _is_installed(INTEGRATION_PACKAGES[name][0])]
    if missing:
        packages = " ".join(INTEGRATION_PACKAGES[name][1] for name in missing)
        raise ResourceError(
            f"report_to={','.join(report_to)}: {', '.join(missing)} is not installed",
            f"pip install {packages}   (or drop it from report_to; report_to=none logs to the run directory only)",
        )
    return wanted
