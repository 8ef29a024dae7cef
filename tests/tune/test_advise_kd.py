"""`tunelab advise` knows stage kd: temperature, alpha and loss with their reasons, the LR rule explained."""

from __future__ import annotations

from pathlib import Path

from tunelab.config import config_from_dict
from tunelab.tune.advise import advise


def test_advice_for_a_kd_run_names_the_distillation_recipe(
    tiny_model_dir: Path, tiny_qwen2_dir: Path
) -> None:
    config = config_from_dict(
        {
            "model_name_or_path": str(tiny_model_dir),
            "stage": "kd",
            "teacher_model_name_or_path": str(tiny_qwen2_dir),
            "dataset": "instruct_en",
            "dataset_dir": "builtin",
            "template": "chatml",
        }
    )
    advice = advise(config)
    items = {item.key: item for item in advice.items}
    assert items["kd_temperature"].value == 2.0 and "Hinton" in items["kd_temperature"].en
    assert items["kd_alpha"].value == 0.5 and "交叉熵" in items["kd_alpha"].zh
    assert items["kd_loss"].value == "forward_kl"
    assert "T^2" in items["learning_rate"].en
    # the advice is a config that loads
    flat = {**config.to_flat(), **advice.updates()}
    assert config_from_dict(flat).kd.kd_temperature == 2.0
