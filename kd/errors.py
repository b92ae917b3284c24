"""Errors about user input (configs, files) that kd reports in one paragraph, without a traceback."""


class ConfigError(ValueError):
    """A config value, override or input file is wrong; the message names it and the fix."""
