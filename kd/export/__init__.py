"""``python -m kd.export <run folder>``: the run's best student (and its teacher) to ONNX, checked
against PyTorch with onnxruntime, optionally quantised to INT8, with sizes and latencies."""
