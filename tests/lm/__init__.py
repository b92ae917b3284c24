"""Tests of kd/lm/."""
