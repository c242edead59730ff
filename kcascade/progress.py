"""Progress lines on stderr for the long phases (compilation, selection,
passes over the rows): off in library calls unless ``progress=True`` is
passed, on in ``python -m kcascade``, the notebooks and the benchmarks.

Every line starts with ``[kcascade]``. A phase prints when it starts, a
"still running" line every ``TICK`` seconds while it runs (compilation by
XLA cannot report its own progress), and how long it took when it ends, so
no stretch of work is silent for longer than ``TICK``; the passes over the
rows add their own percentage lines (``linalg.passes``).
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time

TICK = 5.0


def say(message: str) -> None:
    """One progress line on stderr."""
    print(f"[kcascade] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def phase(label: str, on: bool = True, hint: str = "a first call compiles"):
    """``with phase("selection on 1190 rows", on=progress): ...``: a start line,
    "still running (s; hint)" every TICK seconds, and an end line with the
    seconds taken (nothing when ``on`` is false). ``hint``: why it may take
    long ("" for none)."""
    if not on:
        yield
        return
    say(f"{label} ...")
    t0 = time.perf_counter()
    stop = threading.Event()

    def tick():
        while not stop.wait(TICK):
            say(f"{label}: still running ({time.perf_counter() - t0:.0f} s" + (f"; {hint})" if hint else ")"))

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
    say(f"{label}: done in {time.perf_counter() - t0:.2f} s")
