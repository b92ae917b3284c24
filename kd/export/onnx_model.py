"""ONNX files of a PyTorch classifier: export with a dynamic batch, run with onnxruntime, quantise to INT8."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kd.errors import ConfigError
from kd.taps import Inputs, call_model

INPUT, OUTPUT = "inputs", "logits"
QUANTISATIONS = ("none", "dynamic", "static")  # static: calibrated activations (CNNs); dynamic: transformers


class KeywordLogits(nn.Module):
    """``model`` called with keyword tensors (``input_ids``, ``attention_mask``, ...) given in order, and
    returning its logits: the form the ONNX exporter takes. The model's own ``forward`` is unchanged."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return call_model(self.model, dict(zip(self.names, tensors, strict=True)))


def export_onnx(model: nn.Module, example: Inputs, path: Path) -> Path:
    """Write ``model`` to ``path``: images ``(B, C, H, W)`` with a dynamic batch; keyword token inputs
    ``(B, L)`` (text) with a dynamic batch and sequence length."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    module: nn.Module
    dims: tuple[Any, ...]  # torch.onnx.export's dynamic_shapes: one entry per argument
    if isinstance(example, Mapping):
        names, length = list(example), torch.export.Dim("length", min=2, max=8192)
        module, args = KeywordLogits(model, names), tuple(example.values())
        dims = (tuple({0: batch, 1: length} for _ in names),)  # the one (variadic) argument: a tuple of tensors
    else:
        names, module, args, dims = [INPUT], model, (example,), ({0: batch},)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), args, str(path), dynamo=True, dynamic_shapes=dims,
                              input_names=names, output_names=[OUTPUT], external_data=False)
    except Exception as err:  # noqa: BLE001 - any exporter failure: say which model and why
        cause: BaseException = err
        while cause.__cause__ is not None:  # the exporter wraps torch.export's own message
            cause = cause.__cause__
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise ConfigError(f"{type(model).__name__} could not be exported to ONNX: {reason}") from None
    return path


def feed(inputs: Inputs) -> dict[str, np.ndarray]:
    """onnxruntime's input feed for a batch's inputs (a tensor, or keyword tensors)."""
    if isinstance(inputs, Mapping):
        return {name: tensor.numpy() for name, tensor in inputs.items()}
    return {INPUT: inputs.numpy()}


def session(path: Path, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess, inputs: Inputs) -> np.ndarray:
    return sess.run([OUTPUT], feed(inputs))[0]


class _Calibration:
    """onnxruntime's CalibrationDataReader over a few batches of inputs."""

    def __init__(self, batches: list[Inputs]) -> None:
        self._batches: Iterator[Inputs] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else feed(batch)


def quantise(source: Path, target: Path, method: str, calibration: list[Inputs]) -> Path:
    """INT8 weights: ``dynamic`` (activations quantised at run time) or ``static`` (activation ranges
    from ``calibration`` batches, QDQ format; what helps convolutions)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in QUANTISATIONS[1:]:
        raise ConfigError(f"--quantize {method!r}; choose one of {list(QUANTISATIONS)}")
    prepared = target.with_suffix(".pre.onnx")
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        if method == "dynamic":
            quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)
        else:
            quantize_static(str(prepared), str(target), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
    os.remove(prepared)
    return target
