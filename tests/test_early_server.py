"""`synthfactory run` starts Prefect's temporary API server first (`flows/server.py`): a flow run in
its block is recorded on that real server, the server is gone when the process ends, and settings
that name an API (a profile) win over it. Each case in a fresh process: the session's test harness
must not be the API here."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    return {**env, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1", **extra}


def test_a_flow_in_the_block_runs_on_the_early_server_which_stops_at_exit(tmp_path):
    done = _python("""
        from flows.server import prefect_api, start_early_server

        early = start_early_server()
        assert early is not None
        from prefect import flow
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL

        @flow(name="early-server-check")
        def check() -> str:
            return "done"

        with prefect_api(early):
            assert PREFECT_API_URL.value() == early.api_url, PREFECT_API_URL.value()
            assert check() == "done"
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs()
            assert [(r.name is not None, r.state.name) for r in runs] == [(True, "Completed")], runs
        print("PID", early.process.pid, flush=True)
    """, _env(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    pid = int(next(line for line in done.stdout.splitlines() if line.startswith("PID")).split()[1])
    assert not Path(f"/proc/{pid}").exists()  # stopped (and reaped) at exit
    assert "Starting temporary server" not in done.stderr  # Prefect started no second server of its own


def test_settings_that_name_an_api_win_and_the_early_server_is_stopped_unused(tmp_path):
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('active = "remote"\n[profiles.remote]\nPREFECT_API_URL = "http://127.0.0.1:9/api"\n')
    done = _python("""
        from flows.server import prefect_api, start_early_server

        early = start_early_server()
        assert early is not None  # the environment names no API: started at once
        from prefect.settings import PREFECT_API_URL

        with prefect_api(early):
            assert PREFECT_API_URL.value() == "http://127.0.0.1:9/api", PREFECT_API_URL.value()
            assert early.process is None  # stopped, unused
        print("ok")
    """, _env(tmp_path, PREFECT_PROFILES_PATH=str(profiles)), timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
    assert start_early_server_in(_env(tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api")) == "None"


def start_early_server_in(env: dict[str, str]) -> str:
    """What `start_early_server` returns in a process with `env` (an API named in the environment:
    nothing is started)."""
    done = _python("from flows.server import start_early_server; print(start_early_server())", env, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_the_early_server_ends_with_a_killed_command(tmp_path):
    """SIGKILL skips every exit hook; the server still ends (its parent-death signal), where
    Prefect's own temporary server would outlive the command."""
    import signal
    import time

    done = _python("""
        import os, signal
        from flows.server import start_early_server

        early = start_early_server()
        early.wait_ready(60)
        print(early.process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """, _env(tmp_path))
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    pid = int(done.stdout.split()[0])

    def running() -> bool:  # a zombie (Z: ended, not yet reaped by whoever inherited it) has ended too
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    deadline = time.monotonic() + 60  # that it ends, not how fast: generous on a loaded machine
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running()
