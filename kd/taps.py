"""Feature taps: forward hooks on named submodules, addressed through per-model aliases."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import nn

from kd.errors import ConfigError
from kd.model_outputs import ModelOutputs

Inputs = torch.Tensor | Mapping[str, torch.Tensor]


def to_channels_last(inputs: Inputs) -> Inputs:
    """4-D image batches in the channels-last memory layout; other inputs unchanged."""
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        return inputs.contiguous(memory_format=torch.channels_last)
    return inputs


def to_device(inputs: Inputs, device: torch.device) -> Inputs:
    """A tensor or keyword inputs (a mapping of tensors) on ``device``."""
    if isinstance(inputs, Mapping):
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    return inputs.to(device)


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters are (the CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


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


INPUT = "in"  # ``path[in]``: the module's (first) input instead of its output


def parse_tap(spec: str) -> tuple[str, int | str]:
    """``"a.b[1]"`` -> ``("a.b", 1)``, ``"a.relu[in]"`` -> ``("a.relu", "in")``, ``"a.b"`` -> ``("a.b", 0)``."""
    match = re.fullmatch(r"([^\[\]]+?)(?:\[(\d+|in)\])?", spec.strip())
    if match is None:
        raise ConfigError(f"bad tap {spec!r}: write a module path, optionally followed by [index] or [in]")
    selector = match.group(2) or "0"
    return match.group(1), INPUT if selector == INPUT else int(selector)


class FeatureTaps:
    """Records the outputs of aliased submodules with forward hooks, leaving ``forward`` intact.

    Args:
        model: the network to tap.
        layers: alias -> module path (as in ``model.named_modules()``), e.g. ``{"stage4": "layer4"}``.
            A module returning a tuple records its first element; ``path[i]`` records element ``i``
            instead (e.g. ``bert.encoder.layer.1.attention.self[1]``: attention probabilities);
            ``path[in]`` records the module's first input (``layer3.8.relu[in]``: a residual block's
            pre-ReLU sum), copied when the module is in-place. A module called twice records its last call.
    """

    def __init__(self, model: nn.Module, layers: Mapping[str, str] | None = None) -> None:
        self.model = model
        self.layers = dict(layers or {})
        self._recorded: dict[str, torch.Tensor] = {}
        self._handles: dict[str, torch.utils.hooks.RemovableHandle] = {}
        for alias, spec in self.layers.items():
            path, element = parse_tap(spec)
            try:
                module = model.get_submodule(path)
            except AttributeError:
                raise unknown_module_error(model, path, alias) from None
            if element == INPUT:  # before the call: an in-place module (timm's ReLUs) overwrites its input
                self._handles[alias] = module.register_forward_pre_hook(self._input_recorder(alias, module))
            else:
                self._handles[alias] = module.register_forward_hook(self._recorder(alias, cast(int, element)))

    def _input_recorder(self, alias: str, module: nn.Module):
        copy = bool(getattr(module, "inplace", False))

        def pre_hook(module: nn.Module, args: tuple) -> None:
            self._recorded[alias] = args[0].clone() if copy else args[0]

        return pre_hook

    def _recorder(self, alias: str, element: int):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            if isinstance(output, (tuple, list)):
                output = output[element] if element < len(output) else None
            if output is None:
                raise ConfigError(
                    f"tap {alias!r} ({self.layers[alias]}) recorded None: the module returned no value "
                    f"there. For attention probabilities load the model with attn_implementation=eager."
                )
            self._recorded[alias] = output

        return hook

    def __call__(self, inputs: Inputs, index: torch.Tensor | None = None) -> ModelOutputs:
        self._recorded = {}
        logits = call_model(self.model, inputs)
        features, self._recorded = self._recorded, {}
        mask = inputs.get("attention_mask") if isinstance(inputs, Mapping) else None
        return ModelOutputs(logits=logits, features=features, mask=mask, index=index)

    def keep(self, aliases: set[str]) -> None:
        """Stop recording every alias not in ``aliases`` (those no loss term reads)."""
        for alias in [a for a in self._handles if a not in aliases]:
            self._handles.pop(alias).remove()
            del self.layers[alias]

    def remove(self) -> None:
        """Remove every hook this object registered."""
        for handle in self._handles.values():
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> FeatureTaps:  # noqa: PYI034 - Python 3.10 has no typing.Self
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
