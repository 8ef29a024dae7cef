"""The Python API: `from tunelab import train, evaluate, chat_engine` — cheap to import, callable."""

from __future__ import annotations

import subprocess
import sys


def test_import_is_light_and_names_are_callable() -> None:
    code = (
        "import sys, tunelab\n"
        "assert 'torch' not in sys.modules\n"
        "from tunelab import evaluate, chat_engine\n"
        "assert 'torch' not in sys.modules, 'evaluate/chat_engine imported torch early'\n"
        "from tunelab import train\n"
        "import tunelab.train.run, tunelab.evaluate.run\n"
        "from tunelab import train as again, evaluate as ev2\n"
        "assert callable(train) and callable(evaluate) and callable(chat_engine) and callable(again)\n"
        "assert train.train is tunelab.train.run.train and ev2 is evaluate\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_name_is_an_attribute_error() -> None:
    import pytest

    import tunelab

    with pytest.raises(AttributeError):
        tunelab.no_such_function  # noqa: B018
