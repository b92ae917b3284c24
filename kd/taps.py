"""Feature taps: forward hooks on named submodules, addressed through per-model aliases."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from kd.errors import ConfigError

Inputs = torch.Tensor | Mapping[str, torch.Tensor]


@dataclass
class ModelOutputs:
    """What one forward pass of a tapped model yields: logits and the aliased features."""

    logits: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)

    def feature(self, alias: str) -> torch.Tensor:
        """The feature recorded under ``alias``; a clear error names the declared aliases."""
        if alias not in self.features:
            raise ConfigError(
                f"no feature tap named {alias!r}; this model declares {sorted(self.features)}. "
                "Declare it under `layers:` in the model's config (teacher/ or student/)."
            )
        return self.features[alias]


def unknown_module_error(model: nn.Module, path: str, alias: str) -> ConfigError:
    names = [name for name, _ in model.named_modules() if name]
    close = difflib.get_close_matches(path, names, n=3)
    hint = f" Did you mean {close}?" if close else ""
    return ConfigError(
        f"layers.{alias}: {type(model).__name__} has no module {path!r}.{hint} "
        f"Available module names: {', '.join(names)}"
    )


def call_model(model: nn.Module, inputs: Inputs) -> torch.Tensor:
    """Run ``model`` on a tensor or on keyword inputs and return its logits."""
    out: Any = model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    return out.logits if hasattr(out, "logits") else out


class FeatureTaps:
    """Records the outputs of aliased submodules with forward hooks, leaving ``forward`` intact.

    Args:
        model: the network to tap.
        layers: alias -> module path (as in ``model.named_modules()``), e.g. ``{"stage4": "layer4"}``.
    """

    def __init__(self, model: nn.Module, layers: Mapping[str, str] | None = None) -> None:
        self.model = model
        self.layers = dict(layers or {})
        self._recorded: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        for alias, path in self.layers.items():
            try:
                module = model.get_submodule(path)
            except AttributeError:
                raise unknown_module_error(model, path, alias) from None
            self._handles.append(module.register_forward_hook(self._recorder(alias)))

    def _recorder(self, alias: str):  # noqa: ANN202 - hook signature is torch's
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            # Transformer blocks return tuples; the first element is the hidden state.
            self._recorded[alias] = output[0] if isinstance(output, (tuple, list)) else output

        return hook

    def __call__(self, inputs: Inputs) -> ModelOutputs:
        self._recorded = {}
        logits = call_model(self.model, inputs)
        features, self._recorded = self._recorded, {}
        return ModelOutputs(logits=logits, features=features)

    def remove(self) -> None:
        """Remove every hook this object registered."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> FeatureTaps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
