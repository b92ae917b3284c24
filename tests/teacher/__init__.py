"""Tests of kd/teacher/."""
