"""How the console commands end: with their exit status, and without the interpreter's last
walk over every object they made."""

from __future__ import annotations

import gc
import sys
from typing import NoReturn

__all__ = ["exit_quickly"]


def exit_quickly(code: int) -> NoReturn:
    """Exit with ``code``, skipping the cyclic collections of the interpreter's shutdown.

    By the time a command returns, every output it wrote is closed and flushed.
    What is left is garbage for the final collections, which walk every object
    botocore, s3fs and pyarrow made (0.2 to 0.3 s after ``import s3fs`` on the
    development machine, against 0.04 s with them frozen). Freezing moves those
    objects out of the collector's reach; reference counting still frees what it
    frees, and ``atexit`` handlers (logging's flush among them) run as before.
    """
    gc.freeze()
    sys.exit(code)
