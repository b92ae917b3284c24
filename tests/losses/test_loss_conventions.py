"""One meaning per shared loss hyper-parameter, in every conf/loss/*.yaml (issue 13).

- ``alpha`` only where ``total = (1 - alpha) * ce + alpha * <term>``;
- ``beta`` only where ``total = ce + beta * <term>`` (CE keeps weight 1);
- no top-level ``weight``; method-specific knobs have method-specific names (``tckd_weight``,
  ``nckd_weight``, ``jsd_beta``, ...).

So ``python -m kd.run -m loss=kd,dkd loss.alpha=0.5`` fails loudly for dkd instead of weighing another term.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.paths import CONF

CONF_DIR = CONF
LOSS_FILES = sorted((CONF_DIR / "loss").glob("*.yaml"))
RAW = {path.stem: OmegaConf.to_container(OmegaConf.load(path), resolve=False) for path in LOSS_FILES}
ALPHA = sorted(name for name, cfg in RAW.items() if "alpha" in cfg)
BETA = sorted(name for name, cfg in RAW.items() if "beta" in cfg)
ALPHA_WEIGHT, BETA_WEIGHT, ONE_MINUS_ALPHA = "${loss.alpha}", "${loss.beta}", "${one_minus:${loss.alpha}}"


def interpolations_of(node: Any, key: str, path: str = "") -> list[str]:
    """Dotted paths of every value in ``node`` that interpolates ``loss.<key>``."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in interpolations_of(v, key, f"{path}.{k}".lstrip("."))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in interpolations_of(v, key, f"{path}[{i}]")]
    return [path] if isinstance(node, str) and re.search(rf"\bloss\.{key}\b", node) else []


def header(name: str) -> str:
    """The config's leading comment block, whitespace-normalised."""
    lines = []
    for line in (CONF_DIR / "loss" / f"{name}.yaml").read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return re.sub(r"\s+", " ", " ".join(lines))


def distillation_term(cfg: dict) -> str:
    others = [term for term in cfg["terms"] if term != "ce"]
    assert len(others) == 1, f"expected ce plus one distillation term, got {list(cfg['terms'])}"
    return others[0]


def test_every_loss_config_is_covered() -> None:
    assert len(LOSS_FILES) >= 17 and "ce" in RAW
    assert {"kd", "fkl", "rkl", "jsd", "tvd"} <= set(ALPHA)
    assert {"feature", "at", "sp", "pkt", "cc", "crd", "hidden", "attention", "dkd", "dist", "rkd"} <= set(BETA)


@pytest.mark.parametrize("name", sorted(RAW))
def test_alpha_xor_beta_and_no_top_level_weight(name: str) -> None:
    cfg = RAW[name]
    assert "weight" not in cfg, f"{name}.yaml: a top-level `weight` is ambiguous; use beta"
    assert not ("alpha" in cfg and "beta" in cfg), f"{name}.yaml has both alpha and beta"
    if name in ("ce", "seqkd"):  # seqkd: CE on the teacher's texts, no distillation term to weigh
        assert "alpha" not in cfg and "beta" not in cfg and list(cfg["terms"]) == ["ce"]
    else:
        assert "alpha" in cfg or "beta" in cfg, f"{name}.yaml has neither alpha nor beta"


@pytest.mark.parametrize("name", ALPHA)
def test_alpha_configs_mix_ce_and_one_term(name: str) -> None:
    cfg = RAW[name]
    term = distillation_term(cfg)
    assert cfg["terms"]["ce"]["weight"] == ONE_MINUS_ALPHA
    assert cfg["terms"][term]["weight"] == ALPHA_WEIGHT
    # alpha feeds those two weights and nothing else
    assert sorted(interpolations_of(cfg, "alpha")) == sorted(["terms.ce.weight", f"terms.{term}.weight"])
    assert 0.0 <= float(cfg["alpha"]) <= 1.0
    text = header(name)
    assert f"total = (1 - alpha) * ce + alpha * {term}" in text, text
    assert "Weight convention: alpha weighs" in text, text


@pytest.mark.parametrize("name", BETA)
def test_beta_configs_add_one_term_to_unit_ce(name: str) -> None:
    cfg = RAW[name]
    term = distillation_term(cfg)
    assert float(cfg["terms"]["ce"]["weight"]) == 1.0
    assert cfg["terms"][term]["weight"] == BETA_WEIGHT
    assert interpolations_of(cfg, "beta") == [f"terms.{term}.weight"]  # beta is a term weight only
    assert interpolations_of(cfg, "alpha") == []
    text = header(name)
    assert f"total = ce + beta * {term}" in text, text
    assert "Weight convention: beta weighs" in text, text


def test_no_loss_config_interpolates_a_top_level_weight() -> None:
    for name, cfg in RAW.items():
        assert interpolations_of(cfg, "weight") == [], name


def test_the_sweep_from_the_issue_fails_loudly_for_dkd(make_cfg) -> None:
    # `-m loss=kd,dkd loss.alpha=0.5`: the kd job composes, the dkd job stops instead of re-weighing DKD.
    assert make_cfg("loss=kd", "loss.alpha=0.5").loss.alpha == 0.5
    with pytest.raises(ConfigCompositionException, match="alpha"):
        make_cfg("loss=dkd", "loss.alpha=0.5")


@pytest.mark.parametrize("name", [n for n in BETA if n != "dkd"])
def test_alpha_override_is_refused_on_beta_configs(make_cfg, name: str) -> None:
    with pytest.raises(ConfigCompositionException, match="alpha"):
        make_cfg(f"loss={name}", "loss.alpha=0.5")


@pytest.mark.parametrize("name", ["kd", "jsd"])
def test_beta_override_is_refused_on_alpha_configs(make_cfg, name: str) -> None:
    with pytest.raises(ConfigCompositionException, match="beta"):
        make_cfg(f"loss={name}", "loss.beta=0.5")


def test_alpha_and_beta_weigh_the_documented_terms(make_cfg) -> None:
    kd = make_cfg("loss=kd", "loss.alpha=0.3").loss.terms
    assert (kd.ce.weight, kd.kd.weight) == (pytest.approx(0.7), pytest.approx(0.3))
    dkd = make_cfg("loss=dkd", "loss.beta=2").loss.terms
    assert (dkd.ce.weight, dkd.dkd.weight) == (1.0, 2.0)
    for name in ("dist", "rkd"):
        terms = make_cfg(f"loss={name}", "loss.beta=3").loss.terms
        assert (terms.ce.weight, terms[name].weight) == (1.0, 3.0)


def test_method_specific_knobs_reach_the_modules(make_cfg) -> None:
    cfg = make_cfg("loss=dkd", "loss.beta=2", "loss.tckd_weight=0.5", "loss.nckd_weight=4")
    dkd = instantiate(cfg.loss.terms, _convert_="all")["dkd"]
    assert dkd["weight"] == 2.0 and (dkd["fn"].tckd_weight, dkd["fn"].nckd_weight) == (0.5, 4.0)
    defaults = instantiate(make_cfg("loss=dkd").loss.terms, _convert_="all")["dkd"]["fn"]
    assert (defaults.tckd_weight, defaults.nckd_weight, defaults.temperature) == (1.0, 8.0, 4.0)
    jsd = instantiate(make_cfg("loss=jsd", "loss.jsd_beta=0.25").loss.terms, _convert_="all")
    assert jsd["jsd"]["fn"].jsd_beta == 0.25 and jsd["jsd"]["weight"] == pytest.approx(0.9)
    assert instantiate(make_cfg("loss=jsd").loss.terms, _convert_="all")["jsd"]["fn"].jsd_beta == 0.5


def test_dkd_warm_up_still_scales_beta(make_cfg) -> None:
    cfg = make_cfg("loss=dkd", "loss.beta=2", "loss.warmup_epochs=2")
    try:
        from kd.training import build_loss
    except ImportError:  # build_loss may have moved; the weighted sum is the same
        from kd.losses.weighted_sum import WeightedSum

        loss = WeightedSum(instantiate(cfg.loss.terms, _convert_="all"))
    else:
        loss = build_loss(cfg.loss)
    assert loss.set_epoch(0)["dkd/weight"] == pytest.approx(1.0)
    assert loss.set_epoch(1)["dkd/weight"] == pytest.approx(2.0)
    assert loss.weights["ce"] == 1.0
