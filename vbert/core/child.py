"""Run one function in a child process beside the caller's own work: its result or its error comes back.

    with ChildProcess(train, config, folder) as child:
        ...                      # the caller's own work, on another core
        folder = child.result()  # waits; the child's error is raised here as a ChildFailed

The child is a fresh process (forkserver: not a fork of a parent whose threads may hold locks), gets
the parent's environment as it is when the child starts and the parent's torch thread count (so it
computes what the parent would), shows no progress bar of its
own across the parent's, and stops itself (SIGTERM) when the parent dies outright. Leaving the block
early (an error, Ctrl-C) sends the child SIGTERM, which a training child answers by writing a
checkpoint and stopping (`vbert.core.graceful_stop`). The target must be importable (a module-level
function) and its arguments and result picklable.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import torch

from vbert.core.graceful_stop import stop_when_parent_ends
from vbert.errors import VbertError


class ChildFailed(VbertError):
    """The child's function raised (its type and message are in the text), or the child died."""

    def __init__(self, name: str, reason: str, stopped: bool = False, exit_code: int = 1) -> None:
        super().__init__(f"{name}: {reason}")
        self.reason = reason  # "<error type>: <message>", or how the process ended
        self.stopped = stopped  # ended by a stop signal (SIGTERM, Ctrl-C) after a checkpoint
        self.exit_code = exit_code


def _child_main(
    target: Callable[..., Any],
    args: tuple,
    environ: dict[str, str],
    threads: int,
    stop_errors: tuple[type, ...],
    send: Connection,
) -> None:
    """In the child: run `target(*args)` and send ("ok", result) or ("failed" | "stopped", text, code)."""
    stop_when_parent_ends()
    # the parent's environment as it is now ($VBERT_CACHE, $VBERT_DEVICE...): the fork server that
    # started this process holds the environment of the moment it was started itself
    os.environ.clear()
    os.environ.update(environ)
    os.environ["VBERT_QUIET"] = "1"  # the parent's progress bars are the ones to read
    torch.set_num_threads(threads)
    try:
        outcome: tuple = ("ok", target(*args))
    except stop_errors as err:
        outcome = ("stopped", str(err), getattr(err, "exit_code", 1))
    except BaseException as err:  # noqa: BLE001 - every error goes back to the parent
        outcome = ("failed", f"{type(err).__name__}: {err}", 1)
    try:
        send.send(outcome)
    finally:
        send.close()


class ChildProcess:
    """`target(*args)` in a child process, started on entering the block (see the module's docstring)."""

    def __init__(
        self, target: Callable[..., Any], *args: Any, name: str, stop_errors: tuple[type, ...] = ()
    ) -> None:
        self.target, self.args, self.name, self.stop_errors = target, args, name, stop_errors
        self.process: BaseProcess | None = None
        self.receive: Connection | None = None
        self._outcome: tuple | None = None

    def __enter__(self) -> ChildProcess:
        context = multiprocessing.get_context("forkserver")
        self.receive, send = context.Pipe(duplex=False)
        main_args = (
            self.target,
            self.args,
            dict(os.environ),
            torch.get_num_threads(),
            self.stop_errors,
            send,
        )
        self.process = context.Process(target=_child_main, args=main_args, name=self.name)
        self.process.start()
        send.close()
        return self

    def done(self) -> bool:
        """True once the child has sent its outcome or ended."""
        assert self.process is not None and self.receive is not None, "start the child with `with` first"
        return self._outcome is not None or self.receive.poll() or not self.process.is_alive()

    def result(self) -> Any:
        """Wait for the child and return its function's result; raise ChildFailed if it failed."""
        assert self.process is not None and self.receive is not None, "start the child with `with` first"
        if self._outcome is None:
            try:
                self._outcome = self.receive.recv()
            except EOFError:  # ended without a word: killed, or out of memory
                self.process.join()
                self._outcome = ("failed", f"its process ended (exit code {self.process.exitcode})", 1)
        self.process.join()
        kind, *rest = self._outcome
        if kind == "ok":
            return rest[0]
        reason, exit_code = rest
        raise ChildFailed(self.name, reason, stopped=kind == "stopped", exit_code=exit_code)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.terminate()  # SIGTERM: a training child writes a checkpoint and stops
        if self.process is not None:
            self.process.join()
        if self.receive is not None:
            self.receive.close()
