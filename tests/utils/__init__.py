"""Tests of kd/utils/."""
