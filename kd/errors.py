"""Errors about user input (configs, files) that kd reports in one paragraph, without a traceback."""


class ConfigError(ValueError):
    """A config value, override or input file is wrong; the message names it and the fix."""


def positive_temperature(temperature: float) -> float:
    """``temperature`` as a float, or a :class:`ConfigError` naming ``loss.temperature``."""
    if not temperature > 0:
        raise ConfigError(f"loss.temperature must be > 0, got {temperature}")
    return float(temperature)
