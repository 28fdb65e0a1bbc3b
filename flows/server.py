"""Prefect's API for one `synthfactory run`: the temporary server Prefect would start, started as the
command's first step instead of when the flow first needs it.

Prefect starts its temporary server inside the first `get_client()`: it imports its whole server stack
into the caller (~2 s of one core), then waits while the server process imports it again (~4 s). On a
2-core machine that sat on the path to the first batch, behind Ray's start. This module starts the same
server process (Prefect's uvicorn command and app factory, `PREFECT__SERVER_EPHEMERAL`, the same
database) before Prefect is imported here, and points the run at it exactly when Prefect would have
started its own: the user's settings name no API and allow a temporary server. Otherwise it is stopped
unused. It stops at exit, after Prefect's log and event workers have drained, as Prefect's does.

Imports nothing of Prefect at module level: the command line imports this before anything heavy.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

PORT_IN_USE = 3  # uvicorn's exit status when it cannot bind


class EarlyServer:
    """Prefect's temporary API server in its own process, started at construction."""

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._launch()
        atexit.register(self.stop)  # after Prefect's workers drain (they drain at thread shutdown)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _launch(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        spec = importlib.util.find_spec("prefect")
        assert spec is not None and spec.submodule_search_locations, "prefect is not installed"
        app_dir = Path(list(spec.submodule_search_locations)[0]).parent  # as Prefect's own: prefect's parent
        # from the main thread only (preexec_fn is unsafe once threads run, and the death signal
        # follows the thread that started the child): a relaunch from a warm-up thread goes without.
        # With the death signal, a session of its own: a SIGTERM to the command's process group (a
        # Prefect cancel signals the group) must not stop the server before the run has recorded
        # its end in it; the server ends with the command, however it ends
        main = threading.current_thread() is threading.main_thread() and sys.platform == "linux"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "error", "--lifespan", "on"],
            env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                 "PREFECT__SERVER_FINAL": "1"},
            preexec_fn=_die_with_parent if main else None, start_new_session=main)
        log.info("starting Prefect's temporary server on http://127.0.0.1:%d", self.port)

    def wait_ready(self, timeout_s: float) -> None:
        """Return once the API answers its health check; relaunch on another port if the chosen
        one was taken meanwhile. Raises RuntimeError if it does not come up in `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None, "the server was stopped"
            status = self.process.poll()
            if status == PORT_IN_USE:
                self._launch()
                continue
            if status is not None:
                raise RuntimeError(f"Prefect's temporary API server exited with status {status}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Prefect's temporary API server did not answer within {timeout_s:.0f}s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _die_with_parent() -> None:
    """In the server's process before exec: end with SIGTERM when the command ends, however it ends
    (SIGKILL, SIGTERM skip the atexit stop; Prefect's own temporary server outlives its command then)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_early_server() -> EarlyServer | None:
    """Start the temporary server now, unless the environment names an API or forbids a temporary
    server (a profile that does is found later, by `prefect_api`, and this one is stopped)."""
    allowed = os.environ.get("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "true").lower() not in ("0", "false", "no")
    if os.environ.get("PREFECT_API_URL") or not allowed:
        return None
    return EarlyServer()


@contextmanager
def prefect_api(early: EarlyServer | None) -> Iterator[None]:
    """Within the block, Prefect's client talks to `early` if Prefect would have started a temporary
    server here (its settings name no API and allow one); otherwise `early` is stopped and Prefect
    uses what the settings name."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    settings = get_current_settings()
    if early is None or settings.api.url or not settings.server.ephemeral.enabled:
        if early is not None:
            early.stop()
        yield
        return
    early.wait_ready(settings.server.ephemeral.startup_timeout_seconds)
    with temporary_settings(updates={PREFECT_API_URL: early.api_url}):
        yield
