"""Progress lines for long passes that run outside Lightning's loops (teacher-output caches)."""

from __future__ import annotations

import time


class Progress:
    """A line every ``every`` seconds while a long pass runs: samples done, share, elapsed time."""

    def __init__(self, total: int, what: str, every: float = 30.0) -> None:
        self.total, self.what, self.every = total, what, every
        self.start = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every and done < self.total:
            self.last = now
            print(f"[kd] {self.what}: {done}/{self.total} samples ({100 * done / self.total:.0f} %), "
                  f"{now - self.start:.0f} s", flush=True)
