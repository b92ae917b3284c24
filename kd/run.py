"""Entry point: ``python -m kd.run [group=option ...] [key=value ...]``.

Trains ``student`` on ``loss`` (the job: :func:`kd.job.train`). This module imports Hydra and no more,
so a bad config value is refused (``kd.jobs.guard``, before Hydra writes anything) within a second:
torch, Lightning and the models load only once the config passed its check.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from kd.jobs.help import answer_help
from kd.utils.config_files import hydra_config_path


@hydra.main(version_base="1.3", config_path=hydra_config_path(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry; returns ``optimized_metric`` (``val/acc_best``) for sweepers (:func:`kd.job.run_job`)."""
    from kd.job import run_job  # torch, Lightning and the models: after the config check

    return run_job(cfg)


def cli() -> None:
    """``python -m kd.run``: :func:`main`, plus the closest keys when Hydra refuses an override's key.

    ``--help`` is answered by :mod:`kd.jobs.help` where it renders Hydra's help exactly, without Hydra's
    repository copies (docs/speed.md#start-up).
    """
    if answer_help(sys.argv[1:]):
        return
    try:
        main()
    except SystemExit as exit_:
        if exit_.code == 1:  # Hydra's exit status for a config it could not compose
            from kd.jobs.override_hints import override_hints

            for line in override_hints(sys.argv[1:]):
                print(line, file=sys.stderr)
        raise


if __name__ == "__main__":
    cli()
