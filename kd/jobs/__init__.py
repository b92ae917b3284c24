"""A job's life around training: the typed config check (``validate`` with ``schema`` and ``rules``),
records (names, failures), resume (``resume``, ``migrations``), start-up checks (``preflight``,
``modality``, ``compatibility``) and the Hydra ``guard`` callback."""
