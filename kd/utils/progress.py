"""Progress for long passes that run outside Lightning's loops (teacher-output caches, teacher
responses, generation-quality evaluation): a bar on a terminal, a line every ``every`` seconds in a log."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """A progress bar (tqdm) when stderr is a terminal; otherwise a line every ``every`` seconds while a
    long pass runs: samples done, share, elapsed time."""

    def __init__(self, total: int, what: str, every: float = 30.0) -> None:
        self.total, self.what, self.every = total, what, every
        self.start = self.last = time.perf_counter()
        self.bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm  # a dependency of transformers and huggingface_hub

            self.bar = tqdm(total=total, desc=f"[kd] {what}", unit="sample", leave=False)

    def update(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            return
        now = time.perf_counter()
        if now - self.last >= self.every and done < self.total:
            self.last = now
            print(f"[kd] {self.what}: {done}/{self.total} samples ({100 * done / self.total:.0f} %), "
                  f"{now - self.start:.0f} s", flush=True)

    def close(self) -> None:
        """Remove the bar (lines need no closing)."""
        if self.bar is not None:
            self.bar.close()
