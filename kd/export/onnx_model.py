"""ONNX files of a PyTorch classifier: export with a dynamic batch, run with onnxruntime, quantise to INT8.
Weights go to a side file (``<name>.onnx.data``) when they pass protobuf's 2 GB limit."""

from __future__ import annotations

import contextlib
import io
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
EXTERNAL_DATA_BYTES = 2**31 - 2**28  # weights past this go to a side file: protobuf's 2 GiB limit less room for the graph


class KeywordLogits(nn.Module):
    """``model`` called with keyword tensors (``input_ids``, ``attention_mask``, ...) given in order, and
    returning its logits: the form the ONNX exporter takes. The model's own ``forward`` is unchanged."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return call_model(self.model, dict(zip(self.names, tensors, strict=True)))


def export_onnx(model: nn.Module, example: Inputs, path: Path, external_data_over: int = EXTERNAL_DATA_BYTES) -> Path:
    """Write ``model`` to ``path``: images ``(B, C, H, W)`` with a dynamic batch; keyword token inputs
    ``(B, L)`` (text) with a dynamic batch and sequence length. Weights of more than ``external_data_over``
    bytes go to ``<path>.data`` beside it."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    module: nn.Module
    dims: tuple[Any, ...]  # torch.onnx.export's dynamic_shapes: one entry per argument
    if isinstance(example, Mapping):
        names, length = list(example), torch.export.Dim("length", min=2, max=8192)
        module, args = KeywordLogits(model, names), tuple(example.values())
        dims = (tuple({0: batch, 1: length} for _ in names),)  # the one (variadic) argument: a tuple of tensors
    else:
        names, module, args, dims = [INPUT], model, (example,), ({0: batch},)
    return write_onnx(module, args, path, dims, names, [OUTPUT], type(model).__name__,
                      parameter_bytes(model) > external_data_over)


def parameter_bytes(model: nn.Module) -> int:
    """The bytes of ``model``'s parameters and buffers (tied ones once): what an ONNX file stores."""
    tensors = {t.data_ptr(): t for t in (*model.parameters(), *model.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def write_onnx(module: nn.Module, args: tuple[Any, ...], path: Path, dims: tuple[Any, ...], inputs: list[str],
               outputs: list[str], name: str, external_data: bool) -> Path:
    """``torch.onnx.export`` of ``module`` (dynamo), weights in ``<path>.data`` when ``external_data``;
    a failure is a ConfigError naming the model ``name`` and torch.export's reason."""
    for old in (path, data_file(path)):
        old.unlink(missing_ok=True)  # a data file left by an earlier export would be counted and shipped
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), args, str(path), dynamo=True, dynamic_shapes=dims,
                              input_names=inputs, output_names=outputs, external_data=external_data)
    except Exception as err:  # noqa: BLE001 - any exporter failure: say which model and why
        cause: BaseException = err
        while cause.__cause__ is not None:  # the exporter wraps torch.export's own message
            cause = cause.__cause__
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise ConfigError(f"{name} could not be exported to ONNX: {reason}") from None
    return path


def data_file(path: Path) -> Path:
    """Where ``torch.onnx.export`` (and :func:`quantise`) put the weights of an external-data ``path``."""
    return path.with_name(f"{path.name}.data")


def onnx_files(path: Path) -> list[Path]:
    """``path`` and the external-data files its weights are in (none for a self-contained file)."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    proto = onnx.load(str(path), load_external_data=False)
    tensors = [*proto.graph.initializer, *(a.t for node in proto.graph.node for a in node.attribute if a.HasField("t"))]
    locations = {entry.value for t in tensors if uses_external_data(t) for entry in t.external_data if entry.key == "location"}
    return [path, *(path.parent / location for location in sorted(locations))]


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
    from ``calibration`` batches, QDQ format; what helps convolutions). A ``source`` with external data
    gives a ``target`` with external data (``<target>.data``)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in QUANTISATIONS[1:]:
        raise ConfigError(f"--quantize {method!r}; choose one of {list(QUANTISATIONS)}")
    external = len(onnx_files(source)) > 1
    prepared = target.with_suffix(".pre.onnx")
    for old in (target, data_file(target)):
        old.unlink(missing_ok=True)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True, save_as_external_data=external,
                          all_tensors_to_one_file=True, external_data_location=data_file(prepared).name)
        if method == "dynamic":
            quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8, use_external_data_format=external)
        else:
            quantize_static(str(prepared), str(target), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                            use_external_data_format=external)
    for done in (prepared, data_file(prepared)):
        done.unlink(missing_ok=True)
    return target
