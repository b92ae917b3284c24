"""The launch room: how a job's processes find their rank and start the others (``processes``), and what
each Hydra launcher and sweeper can do, with how parallel jobs share a machine's cores (``launchers``).
The launchers' configs are the ``conf/sweep`` group; a launcher is one YAML there, plus an entry in
``launchers.LAUNCHERS`` where it cannot do what the default launcher does."""
