"""The teacher: its trained weights (``weights``: load a checkpoint, or train once and keep it under
``paths.teacher_weights_dir``) and its cached outputs (``cache``: which splits, load or build;
``outputs``: compute and look up; ``cache_files``: files and their validation)."""
