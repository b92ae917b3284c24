"""Tests of kd/launch/."""
