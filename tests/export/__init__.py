"""Tests of kd/export/."""
