"""A job's life around training: records (names, failures), resume, start-up checks (``preflight``,
``compatibility``) and the Hydra run-folder ``guard``."""
