"""Tests of kd/losses/."""
