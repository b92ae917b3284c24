"""Tests of kd/config/."""
