"""``python -m kd.run --help``: Hydra's help text, composed without Hydra's per-group repository copies.

Hydra's ``--help`` lists the config groups through one deep copy of its config repository (with the
whole ConfigStore of every installed launcher and sweeper plugin) per group and per option list:
about a second for kd's tree on 2 cores, before anything is printed. This module fills the same
template (``hydra.help`` in ``conf/hydra/default.yaml``) from one composition and one walk of the same
repository, so ``--help`` answers in about half a second (docs/speed.md#start-up).

It answers only what it renders exactly as Hydra would: ``--help`` (or ``-h``) with plain ``key=value``
or ``group=option`` overrides, and a template that uses ``$APP_CONFIG_GROUPS`` and ``$CONFIG`` alone.
Anything else (a ``hydra.*`` override, ``--config-dir``, ``$FLAGS_HELP`` in a template) goes to Hydra.
An override that does not compose is refused as a run refuses it: Hydra's message and kd's closest keys.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Sequence

HELP_FLAGS = ("--help", "-h")
TEMPLATE_FIELDS = {"APP_CONFIG_GROUPS", "CONFIG"}  # what this module fills; Hydra fills the rest


def help_overrides(argv: Sequence[str]) -> list[str] | None:
    """The overrides of a ``--help`` call this module can answer, or None (not a help call, or Hydra's)."""
    if not any(arg in HELP_FLAGS for arg in argv):
        return None
    overrides = [arg for arg in argv if arg not in HELP_FLAGS]
    if any(arg.startswith("-") or arg.lstrip("+~").startswith("hydra") for arg in overrides):
        return None  # other flags, or the search path or help template changed: Hydra's own help
    return overrides


def app_config_groups(repository: object) -> str:
    """The ``group: option, option`` lines of every non-Hydra group, as Hydra's ``format_config_groups``."""
    from hydra.core.object_type import ObjectType

    def groups_under(parent: str) -> dict[str, list[str]]:
        """Every group under ``parent`` that holds configs, with their names."""
        found = {}
        for group in repository.get_group_options(parent, ObjectType.GROUP):  # type: ignore[attr-defined]
            name = f"{parent}/{group}" if parent else group
            if options := repository.get_group_options(name, ObjectType.CONFIG):  # type: ignore[attr-defined]
                found[name] = options
            found.update(groups_under(name))
        return found

    groups = {name: options for name, options in groups_under("").items() if name.split("/")[0] != "hydra"}
    return "".join(f"{name}: {', '.join(sorted(groups[name]))}\n" for name in sorted(groups))


def help_text(overrides: list[str]) -> str | None:
    """The help ``python -m kd.run --help <overrides>`` prints, or None where its template needs Hydra."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict

    from kd.utils.config_files import initialize_conf

    with initialize_conf():
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
        template = string.Template(cfg.hydra.help.template)
        fields = {named or braced for _, named, braced, _ in template.pattern.findall(template.template)}
        if fields - TEMPLATE_FIELDS - {""}:
            return None
        repository = GlobalHydra.instance().config_loader().repository  # type: ignore[attr-defined]
        groups = app_config_groups(repository)
    with open_dict(cfg):
        del cfg["hydra"]
    return template.substitute(APP_CONFIG_GROUPS=groups, CONFIG=OmegaConf.to_yaml(cfg))


def answer_help(argv: Sequence[str]) -> bool:
    """Print the help for ``argv`` and say True, or say False where Hydra's ``--help`` must answer.

    Exits with status 1 (Hydra's for a config it cannot compose) when an override is refused.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from kd.jobs.override_hints import override_hints

    overrides = help_overrides(argv)
    if overrides is None:
        return False
    try:
        text = help_text(overrides)
    except (HydraException, OmegaConfBaseException) as error:
        print(error, file=sys.stderr)
        for line in override_hints(overrides):
            print(line, file=sys.stderr)
        raise SystemExit(1) from None
    if text is None:
        return False
    print(text)
    return True
