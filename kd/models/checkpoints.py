"""Weights from a file into a built network: a plain state dict or a kd run's checkpoint (its student)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from kd.errors import ConfigError


def load_weights(net: nn.Module, path: str | Path, key: str, model: str, missing_hint: str = "") -> None:
    """Load ``path`` into ``net``: a plain state dict, or a kd/Lightning checkpoint whose ``student.*``
    weights are taken. Errors name the config ``key`` that gave the path and the ``model`` it was for."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{key}={path} does not exist. {missing_hint}".rstrip())
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ConfigError(f"{key}={path} could not be read as a checkpoint: {err}") from None
    state = saved.get("state_dict", saved) if isinstance(saved, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"{key}={path} holds no state dict")
    if any(k.startswith("student.") for k in state):  # a kd run's checkpoint: take its student
        state = {k.removeprefix("student."): v for k, v in state.items() if k.startswith("student.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[:3]
        raise ConfigError(
            f"{key}={path} does not fit {model}: {' '.join(first)}. "
            "Was it trained with another architecture or class count?"
        ) from None
