"""kd's Hydra config tree, installed as the package ``kd.conf`` (pyproject.toml maps it to this folder)
so that Hydra finds it as ``pkg://kd.conf`` from a wheel as from a checkout (kd/utils/config_files.py)."""
