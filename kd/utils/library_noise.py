"""Hide library messages that carry nothing for a kd run, so that kd's own warnings stand out."""

from __future__ import annotations

import logging
import warnings

# Lightning 2.6.6's own pytree helper trips torch 2.13's deprecation notice on every run.
LEAFSPEC_DEPRECATION = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
LIGHTNING_LOGGER = "lightning.pytorch.utilities.rank_zero"  # Lightning's rank-zero info messages go through it


class DropAdvertisements(logging.Filter):
    """Drops Lightning's "💡 Tip: ... try installing litlogger / litmodels" lines; keeps every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_library_noise() -> None:
    """Install the filters (idempotent). Real warnings of Lightning, torch and W&B still print.

    Lightning's messages print once, through its own console handler: Lightning is imported after
    Hydra set up logging (``kd.run`` checks the config first), so they would also reach Hydra's handlers."""
    logging.getLogger("lightning").propagate = False
    warnings.filterwarnings("ignore", message=LEAFSPEC_DEPRECATION)
    logger = logging.getLogger(LIGHTNING_LOGGER)
    if not any(isinstance(f, DropAdvertisements) for f in logger.filters):
        logger.addFilter(DropAdvertisements())
