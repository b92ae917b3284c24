"""Feature taps: forward hooks on named submodules, addressed through per-model aliases."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from kd.errors import ConfigError

Inputs = torch.Tensor | Mapping[str, torch.Tensor]


@dataclass
class TopK:
    """A distribution kept as its ``k`` largest log-probabilities (``values``, ``index``: ``(..., k)``) and
    the log of the mass outside them (``rest``: ``(...)``), spread evenly over the other ``width - k``
    entries. Teacher-output caches of large vocabularies store this (``kd.teacher.outputs``)."""

    values: torch.Tensor
    index: torch.Tensor
    rest: torch.Tensor
    width: int

    def tail_log_prob(self) -> torch.Tensor:
        """The log-probability of each entry outside the top k, ``(...)``."""
        return self.rest.float() - math.log(max(self.width - self.values.shape[-1], 1))

    def dense(self) -> torch.Tensor:
        """Full-width log-probabilities ``(..., width)``."""
        full = self.tail_log_prob().unsqueeze(-1).expand(*self.values.shape[:-1], self.width).clone()
        return full.scatter_(-1, self.index.long(), self.values.float())


class ModelOutputs:
    """What one forward pass of a tapped model yields: logits and the aliased features.

    ``mask`` is the inputs' token mask (``(B, L)``, 1 = real token, 0 = padding; None for images)
    and ``index`` the data-set indices of the batch's samples (None when the batch has none).
    Cached teacher outputs may come as ``top_k`` only: ``logits`` then expands them on first use,
    and terms that can work on the top k directly (``ForwardKL``) never do.
    """

    def __init__(
        self, logits: torch.Tensor | None = None, features: dict[str, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None, index: torch.Tensor | None = None, top_k: TopK | None = None,
    ) -> None:
        if logits is None and top_k is None:
            raise ValueError("ModelOutputs needs logits or top_k")
        self._logits, self.top_k = logits, top_k
        self.features = features if features is not None else {}
        self.read: set[str] = set()  # the aliases ``feature`` handed out
        self.mask, self.index = mask, index

    @property
    def logits(self) -> torch.Tensor:
        """``(B, C)`` or ``(B, L, V)`` logits (for ``top_k`` outputs: full-width log-probabilities)."""
        if self._logits is None:
            self._logits = self.top_k.dense()
        return self._logits

    @logits.setter
    def logits(self, value: torch.Tensor) -> None:
        self._logits = value

    def feature(self, alias: str) -> torch.Tensor:
        """The feature recorded under ``alias``; a clear error names the declared aliases."""
        if alias not in self.features:
            raise ConfigError(
                f"no feature tap named {alias!r}; this model declares {sorted(self.features)}. "
                "Declare it under `layers:` in the model's config (teacher/ or student/)."
            )
        self.read.add(alias)
        return self.features[alias]


class TeacherOutputs(Protocol):
    """Precomputed teacher outputs of one data split, read by data-set index (see ``kd.teacher.outputs``)."""

    features: Mapping[str, torch.Tensor]

    def lookup(
        self, index: torch.Tensor, mask: torch.Tensor | None = None, device: torch.device | str = "cpu"
    ) -> ModelOutputs: ...


def to_channels_last(inputs: Inputs) -> Inputs:
    """4-D image batches in the channels-last memory layout; other inputs unchanged."""
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        return inputs.contiguous(memory_format=torch.channels_last)
    return inputs


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
                self._handles[alias] = module.register_forward_hook(self._recorder(alias, element))

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
