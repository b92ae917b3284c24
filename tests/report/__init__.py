"""Tests of kd/report/."""
