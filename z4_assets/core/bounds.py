"""Bounded steps: a time-out on every step, and retries with backoff for transient failures only.

A step runs under a deadline (SIGALRM, so a step blocked in a socket read or a sleep is stopped
too; it needs the step on the process's main thread, as the in-process and the Kubernetes
executors run it). Past the deadline the step is interrupted and `StepTimedOut` is raised: a
time-out, neither a crash nor a gate. A transient failure (a connection to MLflow or the vault
refused or reset, a full disk) is tried again, `attempts` times at most, waiting `backoff * 2**n`
(capped) in between, all inside the same deadline. Anything else, and a gate (a returned verdict,
never an exception), is never retried.
"""

from __future__ import annotations

import errno
import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable


class StepTimedOut(Exception):
    def __init__(self, step: str, seconds: float, stopped_after: float):
        super().__init__(f"{step} timed out after {seconds:g} s (policy runs.step_timeout_seconds); "
                         f"stopped {stopped_after:.1f} s after it began")
        self.step, self.seconds, self.stopped_after = step, seconds, stopped_after


class _Alarm(BaseException):
    """Raised by the alarm handler: a BaseException, so no `except Exception` in a library swallows it."""


_TRANSIENT_ERRNO = {errno.ENOSPC, errno.EDQUOT, errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT,
                    errno.EHOSTUNREACH, errno.ENETUNREACH}
_TRANSIENT_NAMES = {"ConnectionError", "ConnectTimeout", "ReadTimeout", "MaxRetryError", "NewConnectionError",
                    "ConnectionRefusedError", "ConnectionResetError", "RemoteDisconnected", "ProtocolError"}
_TRANSIENT_TEXT = ("connection refused", "max retries exceeded", "failed to establish a new connection",
                   "no space left on device", "temporarily unavailable", "database is locked")


def is_transient(exc: BaseException) -> bool:
    """A failure of the outside world that may pass: checked on the exception and its causes."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNO:
            return True
        if type(exc).__name__ in _TRANSIENT_NAMES:
            return True
        if any(t in str(exc).lower() for t in _TRANSIENT_TEXT):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


@contextmanager
def deadline(step: str, seconds: float):
    """Stop the body after SECONDS with StepTimedOut (main thread only; elsewhere it is not armed and
    the run-level limit, Dagster's run monitoring or the pod's activeDeadlineSeconds, applies)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield False
        return

    fired: list[float] = []
    start = time.monotonic()

    def _fire(signum, frame):
        fired.append(time.monotonic())
        raise _Alarm()

    before = signal.signal(signal.SIGALRM, _fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    except _Alarm:  # the body's own failure handling (cost reports) may have run since: FIRED says when
        raise StepTimedOut(step, seconds, (fired[0] if fired else time.monotonic()) - start) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


def with_retries(fn: Callable, attempts: int, backoff: float, cap: float,
                 on_retry: Callable[[int, BaseException, float], None] = lambda n, e, w: None):
    """FN(), tried again on a transient failure only, ATTEMPTS times at most."""
    for n in range(attempts):
        try:
            return fn()
        except Exception as e:
            if n + 1 >= attempts or not is_transient(e):
                raise
            wait = min(cap, backoff * 2 ** n)
            on_retry(n + 1, e, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")
