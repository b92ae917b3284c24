"""Tests of kd/data/."""
