"""Where the repository, its package, its configs and the test fixtures are, for tests at any depth."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KD = REPO / "kd"
CONF = REPO / "conf"
FIXTURES = REPO / "tests" / "fixtures"
