"""Comparison report from run folders (``python -m kd.report``): ``runs`` reads them, ``table`` groups
them into configurations (report.md, report.json), ``plots`` draws the figures."""
