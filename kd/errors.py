"""Errors kd reports in one paragraph, without a traceback: bad input, and runs that cannot go on."""


class ConfigError(ValueError):
    """A config value, override or input file is wrong; the message names it and the fix."""


class RunError(RuntimeError):
    """A run stopped for a reason found while it ran (non-finite loss, full disk); the message says
    what happened, which checkpoint is the last good one and how to go on."""


def positive_temperature(temperature: float) -> float:
    """``temperature`` as a float, or a :class:`ConfigError` naming ``loss.temperature``."""
    if not temperature > 0:
        raise ConfigError(f"loss.temperature must be > 0, got {temperature}")
    return float(temperature)
