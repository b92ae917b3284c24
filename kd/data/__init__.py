"""Data modules. Batches are dicts: ``inputs`` (tensor or dict of tensors), ``labels``, ``index``."""
