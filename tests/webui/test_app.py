"""The app builds from the schema, relabels live, guards exposure, and keeps `tunelab --help` free of gradio."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tunelab.config import help_text
from tunelab.errors import ConfigError
from tunelab.webui.app import check_exposure, create_app, is_loopback
from tunelab.webui.forms import config_keys, field_spec
from tunelab.webui.i18n import field_label


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("webui-app")
    return create_app(runs_dir=root / "runs", state_dir=root / "state")


def test_every_form_field_is_a_schema_key_with_the_schema_help(app) -> None:
    ctx = app.tunelab_context
    keys = set(config_keys())
    fields = ctx.translator.field_keys()
    assert fields and sorted(k for k in fields if k not in keys) == []
    for required in (
        "learning_rate",
        "lora_rank",
        "health.grad_norm_alarm",
        "early_stopping.patience",
        "model_name_or_path",
        "quantization_bit",
        "rope_scaling",
        "export_size",
        "temperature",
    ):
        assert required in fields, required
    component = ctx.fields["learning_rate"]
    assert component.label == field_label("learning_rate", "en")
    assert component.info == field_spec("learning_rate").help("en")


def test_switching_language_relabels_every_registered_widget(app) -> None:
    ctx = app.tunelab_context
    updates = ctx.translator.updates("zh")
    assert len(updates) == len(ctx.translator.components)
    by_component = dict(zip(map(id, ctx.translator.components), updates))
    lr = by_component[id(ctx.fields["learning_rate"])]
    from tunelab.config import TrainingArgs

    assert lr["label"] == "学习率" and lr["info"] == help_text(TrainingArgs, "learning_rate", "zh")
    assert all(u.get("label") or u.get("value") for u in updates)


def test_the_form_builds_a_valid_config(app) -> None:
    ctx = app.tunelab_context
    values = [c.value for c in ctx.fields.values()] + [c.value for c in ctx.extra_inputs] + [{}]
    flat, config = ctx.form_config(values)
    assert config.model.model_name_or_path == "tiny:llama"
    assert config.training.learning_rate == field_spec("learning_rate").default
    assert "max_samples" not in flat  # the empty number box is "unset"


def test_non_loopback_hosts_need_auth() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    with pytest.raises(ConfigError, match="--auth"):
        check_exposure("0.0.0.0", None)
    assert check_exposure("0.0.0.0", "me:secret") == ("me", "secret")
    with pytest.raises(ConfigError):
        check_exposure("127.0.0.1", "no-colon")


def test_cli_help_does_not_import_gradio() -> None:
    code = "import sys; from tunelab.cli import app; print('gradio' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    result = subprocess.run(
        [sys.executable, "-m", "tunelab", "webui", "--host", "0.0.0.0"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "--auth" in result.stderr
