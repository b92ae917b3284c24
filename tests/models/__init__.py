"""Tests of kd/models/."""
