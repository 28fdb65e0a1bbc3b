"""SIGTERM to `synthfactory run` (what a Prefect cancel or a stopping container sends): the run ends
within 10 s, its engines stopped, the batches it finished kept in staging for the rerun, and one
line on stderr says so; the exit status is 143 (128 + SIGTERM, as a shell reports it).

The signal raises `RunStopped` in the main thread, and the run's `finally` blocks stop what they
started on the way up (engine actors killed, Ray and Prefect's temporary server stopped). Prefect's
flow engine holds SIGTERM while its flow runs: it marks the flow run crashed and sends the signal
again, to this handler. A watchdog sees the first SIGTERM whoever handles it (the interpreter writes
every caught signal to the `signal.set_wakeup_fd` pipe) and, `HARD_EXIT_S` later, or at once on a
second SIGTERM, prints the line, kills the command's child processes and exits: a teardown that hangs
cannot break the bound. It exits as soon as the run has nothing left to stop (`lost`: a SIGTERM to the
whole process group also ended the local Ray cluster and its engines, and Ray's own shutdown would
wait seconds on its dead GCS); under Prefect, not before the flow engine recorded the crash.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

EXIT_CODE = 128 + signal.SIGTERM  # 143
HARD_EXIT_S = 6.0  # after the first SIGTERM: a machine too busy to tear down in 6 s needs the rest of 10 s to kill
POLL_S = 0.25


class RunStopped(BaseException):
    """SIGTERM stopped the run. A BaseException, as KeyboardInterrupt is: no `except Exception` on
    the way up takes it for a failure to retry, record or report."""

    exit_code = EXIT_CODE

    def __init__(self, guard: SigtermGuard) -> None:
        super().__init__("stopped by SIGTERM")
        self.guard = guard

    def report(self) -> None:
        self.guard.say()


class SigtermGuard:
    """For a `with` block in the main thread: SIGTERM raises `RunStopped`, and a watchdog bounds
    the time to exit. `staging` gives the dataset's staging folder (a `Location`), read only if
    the line is printed: it counts the batches that finished every stage of `STAGES` there.
    `lost` says whether what the run would stop is gone already (then the teardown is skipped)."""

    def __init__(self, staging: Callable[[], Any], command: str = "synthfactory run",
                 lost: Callable[[], bool] = lambda: False) -> None:
        self.staging = staging
        self.command = command
        self.lost = lost
        self.since: float | None = None  # monotonic time of the first SIGTERM
        self._calls = 0  # SIGTERMs this handler took (Prefect's engine takes the first during a flow)
        self._lock = threading.RLock()  # the handler may interrupt the main thread holding it
        self._said = False
        self._previous: Any = None
        self._installed = False
        self._pipe: tuple[int, int] | None = None
        self._old_wakeup = -1

    def __enter__(self) -> SigtermGuard:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach the main thread only: nothing to guard here
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._installed = True
        read, write = os.pipe()
        os.set_blocking(write, False)
        try:
            self._old_wakeup = signal.set_wakeup_fd(write)
        except ValueError:
            os.close(read)
            os.close(write)
            return self
        self._pipe = (read, write)
        threading.Thread(target=self._watch, args=(read,), name="sigterm-watchdog", daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.since is not None or not self._installed:
            return  # stopping: the handler and the watchdog stay until the process is gone
        signal.signal(signal.SIGTERM, self._previous)
        if self._pipe is not None:
            read, write = self._pipe
            signal.set_wakeup_fd(self._old_wakeup)
            os.write(write, b"\0")  # wakes the watchdog, which closes its end and returns
            os.close(write)
            self._pipe = None

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._started()
        self._calls += 1
        if self._calls > 1 or self._nothing_to_stop():
            self.hard_exit()  # a second SIGTERM, or nothing left to stop: the teardown is not waited for
        raise RunStopped(self)

    def _watch(self, read: int) -> None:
        try:
            while True:
                data = os.read(read, 64)
                if not data or data == b"\0":
                    return
                if signal.SIGTERM in data:
                    self._started()
        finally:
            os.close(read)

    def _started(self) -> None:
        with self._lock:
            if self.since is not None:
                return
            self.since = time.monotonic()
        threading.Thread(target=self._countdown, name="sigterm-hard-exit", daemon=True).start()

    def _countdown(self) -> None:
        """Exit `HARD_EXIT_S` after the first SIGTERM, or once this handler took it (a flow engine
        that held it is done with it) and nothing is left to stop."""
        assert self.since is not None
        while time.monotonic() - self.since < HARD_EXIT_S:
            time.sleep(POLL_S)
            if self._calls and self._nothing_to_stop():
                break
        self.hard_exit()

    def _nothing_to_stop(self) -> bool:
        try:
            return bool(self.lost())
        except Exception:
            return False

    def line(self) -> str:
        staging = self.staging()
        try:
            finished = finished_batches(staging)
            kept = f"{finished} finished batch{'' if finished == 1 else 'es'}"
        except Exception:
            kept = "the finished batches"
        return (f"{self.command}: stopped by SIGTERM; {kept} kept in {staging}; "
                "run the same command again to resume")

    def say(self, raw: bool = False) -> None:
        """The one line, once (the main thread and the watchdog may both get here). Written, not
        printed: Prefect's `log_prints` sends a print inside its flow run to the run's log. `raw`
        (on the way to `os._exit`): to file descriptor 2, past a buffer another write may hold."""
        with self._lock:
            if self._said:
                return
            self._said = True
        text = self.line() + "\n"
        if raw:
            os.write(2, text.encode())
        else:
            sys.stderr.write(text)
            sys.stderr.flush()

    def hard_exit(self) -> None:
        """The line, then this command's child processes (the temporary API server, a local Ray
        cluster and its engine actors) killed, then exit without further teardown."""
        try:
            try:
                sys.stderr.flush()
            except Exception:
                pass
            self.say(raw=True)
            kill_children()
        finally:
            os._exit(EXIT_CODE)


def finished_batches(staging: Any) -> int:
    """Batches whose every stage finished: their last stage's result is staged (`stage_key`)."""
    from synthfactory.registry import STAGES

    last = list(STAGES)[-1]
    local = getattr(staging, "local_path", None)
    if local is not None:
        return len(list(local.glob(f"*-{last}"))) if local.is_dir() else 0
    return len(staging.glob(f"*-{last}"))


def kill_children(wait_s: float = 0.5) -> None:
    """SIGKILL every process this one started, children of children included, and wait up to
    `wait_s` for them to be gone."""
    try:
        import psutil

        children = psutil.Process().children(recursive=True)
    except Exception:
        return
    for child in children:
        try:
            child.kill()
        except Exception:
            pass
    try:
        psutil.wait_procs(children, timeout=wait_s)
    except Exception:
        pass
