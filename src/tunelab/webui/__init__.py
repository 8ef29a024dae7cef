"""The web UI (`tunelab webui`): a Gradio app generated from the config schema, in English and Chinese.

Importing this package imports gradio; the CLI imports it only inside the `webui` command.
"""

from __future__ import annotations

from tunelab.webui.app import create_app, launch

__all__ = ["create_app", "launch"]
