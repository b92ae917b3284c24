"""OmegaConf resolvers used by the configs."""

from omegaconf import OmegaConf


def one_minus(value: float | str) -> float:
    """``${one_minus:${loss.alpha}}`` -> ``1 - alpha`` (the hard-label share of a KD loss)."""
    return 1.0 - float(value)


def register_resolvers() -> None:
    """Register kd's resolvers (idempotent)."""
    OmegaConf.register_new_resolver("one_minus", one_minus, replace=True)
