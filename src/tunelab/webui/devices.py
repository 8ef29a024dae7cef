"""The Train tab's "devices" group: how many processes train, and which DeepSpeed preset shards them.

The choices become exactly what the command line takes: the launch flags of `tunelab train`
(``--nproc-per-node N --nnodes M``) and the ``deepspeed`` config key (a shipped preset, the
offload box picking its ``_offload`` variant). Nothing here starts processes itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunelab.errors import ConfigError

__all__ = ["DEEPSPEED_CHOICES", "Devices", "build_devices_group"]

DEEPSPEED_CHOICES = ("none", "z0", "z2", "z3")  # offload is the checkbox (z2_offload, z3_offload)


@dataclass(frozen=True)
class Devices:
    """The devices group's values."""

    nproc_per_node: int = 1
    nnodes: int = 1
    deepspeed: str = "none"
    offload: bool = False

    @classmethod
    def from_widgets(cls, values: list[Any]) -> Devices:
        nproc, nnodes, deepspeed, offload = values
        return cls(int(nproc or 1), int(nnodes or 1), str(deepspeed or "none"), bool(offload))

    def preset(self) -> str | None:
        """The ``deepspeed:`` preset chosen, or None (keep the config's own value)."""
        if self.deepspeed == "none":
            if self.offload:
                raise ConfigError(
                    "offload needs a DeepSpeed preset",
                    "pick deepspeed z2 or z3 in the devices group",
                    code="offload_needs_preset",
                )
            return None
        if self.offload and self.deepspeed == "z0":
            raise ConfigError(
                "ZeRO stage 0 has no offload", "pick z2 or z3 with offload", code="z0_no_offload"
            )
        return f"{self.deepspeed}_offload" if self.offload else self.deepspeed

    def launch_args(self) -> list[str]:
        """The `tunelab train` flags that start the processes (none for one process on one node)."""
        if self.nproc_per_node < 1 or self.nnodes < 1:
            raise ConfigError(
                "processes per node and nodes must be at least 1",
                "e.g. 2 processes, 1 node",
                code="bad_process_count",
            )
        if self.nproc_per_node == 1 and self.nnodes == 1:
            return []
        args = ["--nproc-per-node", str(self.nproc_per_node)]
        return args + (["--nnodes", str(self.nnodes)] if self.nnodes > 1 else [])

    def apply(self, flat: dict[str, Any]) -> None:
        """Set the chosen preset in the flat config (a config's own deepspeed value stays when none is chosen)."""
        preset = self.preset()
        if preset is not None:
            flat["deepspeed"] = preset


def build_devices_group(ctx: Any) -> list[Any]:
    """The group's widgets, in the order Devices.from_widgets reads them."""
    import gradio as gr

    from tunelab.webui.i18n import choices, tr

    lang, t = ctx.default_lang, ctx.translator
    with gr.Accordion(tr("acc.devices", lang), open=False) as acc:
        t.label(acc, "acc.devices")
        with gr.Row():
            widgets = [
                t.label(
                    gr.Number(1, precision=0, minimum=1, label=tr("lbl.nproc_per_node", lang)),
                    "lbl.nproc_per_node",
                ),
                t.label(gr.Number(1, precision=0, minimum=1, label=tr("lbl.nnodes", lang)), "lbl.nnodes"),
                t.choices(
                    t.label(
                        gr.Dropdown(
                            choices("choice", DEEPSPEED_CHOICES, lang),
                            value="none",
                            label=tr("lbl.deepspeed_preset", lang),
                        ),
                        "lbl.deepspeed_preset",
                    ),
                    "choice",
                    DEEPSPEED_CHOICES,
                ),
                t.label(gr.Checkbox(False, label=tr("lbl.offload", lang)), "lbl.offload"),
            ]
    return widgets
