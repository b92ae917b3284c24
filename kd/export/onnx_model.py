"""ONNX files of a PyTorch classifier: export with a dynamic batch, run with onnxruntime, quantise to INT8."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kd.errors import ConfigError

INPUT, OUTPUT = "inputs", "logits"
QUANTISATIONS = ("none", "dynamic", "static")


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Write ``model`` (image inputs ``(B, C, H, W)``) to ``path`` with a dynamic batch dimension."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (example,), str(path), dynamo=True, dynamic_shapes=({0: batch},),
                              input_names=[INPUT], output_names=[OUTPUT], external_data=False)
    except Exception as err:  # noqa: BLE001 - any exporter failure: say which model and why
        raise ConfigError(f"{type(model).__name__} could not be exported to ONNX: {str(err).splitlines()[0]}") from None
    return path


def session(path: Path, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess, inputs: torch.Tensor) -> np.ndarray:
    return sess.run([OUTPUT], {INPUT: inputs.numpy()})[0]


class _Calibration:
    """onnxruntime's CalibrationDataReader over a few batches of inputs."""

    def __init__(self, batches: list[torch.Tensor]) -> None:
        self._batches: Iterator[torch.Tensor] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT: batch.numpy()}


def quantise(source: Path, target: Path, method: str, calibration: list[torch.Tensor]) -> Path:
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
