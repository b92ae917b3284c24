"""Text models for configs: pretrained (optionally truncated) BERTs and random-init small BERTs.

A model or tokenizer is named by ``name_or_path`` (see ``kd.models.names``).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

from torch import nn

from kd.errors import ConfigError
from kd.models.names import resolve_model_path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_pretrained(loader, name_or_path: str, what: str, **kwargs):
    """``loader(path, **kwargs)`` for a model name (``kd.models.names``); a load failure is a ConfigError."""
    path = resolve_model_path(name_or_path, with_weights=what != "tokenizer")
    try:
        return loader(path, **kwargs)
    except OSError as err:
        offline = " (HF_HUB_OFFLINE is set: hub names need network access)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise ConfigError(f"could not load {what} {name_or_path!r}{offline}: {str(err).splitlines()[0]}") from None


@functools.lru_cache(maxsize=8)
def load_tokenizer(name_or_path: str):
    """The (cached) fast tokenizer stored with ``name_or_path``."""
    from transformers import AutoTokenizer

    return load_pretrained(AutoTokenizer.from_pretrained, name_or_path, "tokenizer")


def truncate_layers(config, num_layers: int | None, name_or_path: str) -> None:
    """Keep only the first ``num_layers`` layers of a model ``config`` (None keeps all)."""
    if num_layers is None:
        return
    if not 1 <= num_layers <= config.num_hidden_layers:
        raise ConfigError(
            f"net.num_layers={num_layers}: {name_or_path} has {config.num_hidden_layers} layers; "
            f"choose 1..{config.num_hidden_layers}"
        )
    config.num_hidden_layers = num_layers


def pretrained_classifier(
    name_or_path: str,
    num_labels: int,
    num_layers: int | None = None,
    attn_implementation: str = "eager",
    attention_dropout: float | None = None,
) -> nn.Module:
    """A pretrained encoder with a new sequence-classification head.

    Args:
        name_or_path: where the weights are (see the module docstring).
        num_labels: classes of the new head.
        num_layers: keep only the first ``num_layers`` transformer layers (None keeps all).
        attn_implementation: ``eager`` exposes attention probabilities to taps; ``sdpa`` is faster
            but its attention modules return no probabilities.
        attention_dropout: replaces the checkpoint's attention-probability dropout when given.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = load_pretrained(AutoConfig.from_pretrained, name_or_path, "model config")
    truncate_layers(config, num_layers, name_or_path)
    config.num_labels = num_labels
    config._attn_implementation = attn_implementation
    if attention_dropout is not None:
        config.attention_probs_dropout_prob = attention_dropout
    with expected_weight_changes():  # the new head and dropped layers are expected, not news
        return load_pretrained(
            AutoModelForSequenceClassification.from_pretrained, name_or_path, "model", config=config
        )


@contextlib.contextmanager
def expected_weight_changes() -> Iterator[None]:
    """Load a model without transformers' report of unused or new weights (dropped layers, a new head)."""
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)


def random_bert(
    tokenizer: str,
    num_labels: int,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 512,
    max_position_embeddings: int = 512,
    attn_implementation: str = "eager",
    attention_dropout: float = 0.1,
) -> nn.Module:
    """A randomly initialised BERT classifier whose vocabulary is ``tokenizer``'s."""
    from transformers import BertConfig, BertForSequenceClassification

    if hidden_size % num_heads:
        raise ConfigError(f"hidden_size={hidden_size} is not divisible by num_heads={num_heads}")
    vocab = load_tokenizer(tokenizer)
    # num_labels is a PreTrainedConfig property set from keyword arguments; transformers' dataclass typing omits it
    config = BertConfig(  # type: ignore[call-arg]
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        num_labels=num_labels,
        pad_token_id=vocab.pad_token_id or 0,
        attention_probs_dropout_prob=attention_dropout,
    )
    config._attn_implementation = attn_implementation
    return BertForSequenceClassification(config)
