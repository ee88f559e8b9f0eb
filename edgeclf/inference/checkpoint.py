"""The one loader of ``.keras`` checkpoints (training's resume, export, eval, parity, bench):
safe mode, never runs code from the file. Keras is imported when called."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from edgeclf.errors import ModelError, RunError


def load_checkpoint(path: str | Path) -> Any:
    """Load a ``.keras`` checkpoint safely (``safe_mode=True``, not compiled).

    Refuses, without executing anything, a file that is not a Keras archive or whose
    config holds a ``Lambda`` layer; refuses an archive that holds no ``keras.Model``.
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist")
    config = _archive_config(path)
    if '"Lambda"' in config:
        raise ModelError(f"{path} contains a Lambda layer (arbitrary code); edgeclf loads "
                         "only models made of built-in layers")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # noqa: BLE001 - any failure to deserialise is a bad model file
        raise ModelError(f"cannot load {path} as a Keras model: {type(e).__name__}: "
                         f"{str(e)[:300]}") from None
    if not isinstance(model, keras.Model):
        raise ModelError(f"checkpoint {path} holds a {type(model).__name__}, not a Model")
    return model


def _archive_config(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            text = zf.read("config.json").decode("utf-8")
        json.loads(text)
        return text
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, ValueError, OSError):
        raise ModelError(f"{path} is not a Keras .keras model archive") from None
