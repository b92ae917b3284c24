"""Tests of kd/jobs/."""
