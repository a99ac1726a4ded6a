"""Stop a long job at a safe point when asked to: SIGTERM (a scheduler's time limit, `timeout`,
`kill`, torchrun shutting down) or the first Ctrl-C (SIGINT) only set a flag; the job checks it
between steps, writes a checkpoint and ends. A second Ctrl-C interrupts at once.

    with GracefulStop() as stop:
        for step in ...:
            if stop.requested:
                save(); break

Signals can only be handled in the main thread; elsewhere `GracefulStop` changes nothing and
`requested` stays False. A signal the process ignores (SIG_IGN, as a script does for the SIGINT of
a job it starts in the background) stays ignored. On leaving the block the previous handlers come
back; when the block ends normally although a signal was caught (the job finished before acting
on it), the signal is delivered again, so it still takes effect. A job that acts on it ends the
block with an exception.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class GracefulStop:
    """Turns SIGTERM and a first SIGINT into a request to stop at the next safe point."""

    def __init__(self, what: str = "training") -> None:
        self.what = what
        self.signal: signal.Signals | None = None  # the signal that asked to stop, once one did
        self._previous: dict[signal.Signals, Any] = {}

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        """The shell's code for death by this signal (143 for SIGTERM, 130 for SIGINT)."""
        return 128 + int(self.signal) if self.signal is not None else 0

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signal = signal.Signals(signum)
        print(
            f"\n{self.signal.name}: finishing the current step of {self.what}, writing a checkpoint, then "
            "stopping (Ctrl-C again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # ignored on purpose (e.g. SIGINT of a job started with `&` by a script): stays so
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}
        if self.signal is not None and exc_info[0] is None:
            signal.raise_signal(self.signal)  # finished before acting on it: let it take effect now


def detach_worker_from_signals(worker_id: int = 0) -> None:
    """DataLoader `worker_init_fn`: move the worker to a session of its own.

    A signal sent to the whole process group (Ctrl-C in a terminal, `timeout`) then reaches only
    the training process, which stops cleanly; a worker killed with it would make the loader fail
    before the checkpoint is written. Workers still exit when the training process goes away.
    """
    if not hasattr(os, "setsid"):  # Windows: no sessions; Ctrl-C reaches the workers as before
        return
    try:
        os.setsid()
    except OSError:
        pass  # already a session or group leader: nothing to do


def stop_when_parent_ends() -> threading.Thread | None:
    """In a child process: a watcher that sends this process SIGTERM once its parent has ended.

    A parent killed outright (SIGKILL, out of memory) cannot stop its children; without this, the
    child would go on writing into a folder that the next run resumes from. SIGTERM makes a training
    child write a checkpoint and stop (`vbert.core.graceful_stop`).
    """
    parent = multiprocessing.parent_process()
    if parent is None:  # not a multiprocessing child
        return None

    def watch() -> None:
        parent.join()  # returns when the parent process has ended
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=watch, name="stop when parent ends", daemon=True)
    watcher.start()
    return watcher
