"""Engine health without a cluster: the llama.cpp build is portable, the load params follow the
build, start checks catch broken engines, crash causes read right, and endpoint failures are
classified as infrastructure (stop the run) or as a row's problem (quarantine it). Seconds."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from synthfactory.engines.base import ChatResult, EngineSpec, start_check
from synthfactory.errors import EngineFailure
from tests.conftest import cli_command, free_port

SPEC = EngineSpec("llamacpp", "smollm2-135m-instruct")


def test_the_installed_llama_cpp_runs_on_any_avx2_cpu():
    """What `make install` builds: no AVX-512 or AMX compiled in, whatever CPU built it."""
    from synthfactory.engines.llamacpp import build_info

    info = build_info()
    assert "AVX2" in info["features"], info["system_info"]
    assert info["non_portable"] == [] and not info["amx"], info["system_info"]


def test_the_engine_loads_with_extra_buffer_types_off_exactly_when_the_build_has_amx():
    from synthfactory.engines.llamacpp import LlamaCppEngine, _model_params, build_info, resolve_model_path

    engine = LlamaCppEngine(SPEC)
    assert engine.use_extra_bufts == (not build_info()["amx"])
    from llama_cpp import Llama

    with _model_params(use_extra_bufts=False):  # what an AMX build gets: the real load, params read back
        llm = Llama(model_path=str(resolve_model_path(SPEC.model)), n_ctx=256, n_threads=1, verbose=False)
    assert llm.model_params.use_extra_bufts is False
    out = llm.create_chat_completion(messages=[{"role": "user", "content": "Hi"}], max_tokens=2, seed=1)
    assert out["usage"]["completion_tokens"] >= 1
    import llama_cpp.llama_cpp as lib

    assert lib.llama_model_default_params().use_extra_bufts is True  # restored after the load


class _Stub:
    def __init__(self, results):
        self.results = results
        self.model_name = "stub"

    def chat(self, requests):
        return self.results[: len(requests)]


def test_start_check_needs_a_token_and_logprobs_when_the_judge_reads_them():
    ok = ChatResult("ok", "length", 5, 1, 0.01, logprobs=[{"token": "ok", "logprob": -0.1, "top": []}])
    start_check(_Stub([ok, ok]), EngineSpec("llamacpp", "m", logprobs=True))
    with pytest.raises(EngineFailure, match="failed its start check: engine_error: boom"):
        start_check(_Stub([ChatResult("", "error", 0, 0, 0.0, error="engine_error: boom")]), SPEC)
    bare = ChatResult("ok", "length", 5, 1, 0.01)
    with pytest.raises(EngineFailure, match="no log-probabilities"):
        start_check(_Stub([bare, bare]),
                    EngineSpec("openai", "m", {"base_urls": ["http://127.0.0.1:1/v1"]}, logprobs=True))


def test_crash_cause_names_engine_model_signal_activity_and_logs(tmp_path):
    from synthfactory.engines.crash import crash_cause

    report = tmp_path / "r.faults"
    report.write_text(
        "replica pid 7 on node abcdef0123456789, worker log /tmp/ray/w-7.err\n"
        "Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n"
        '  File "llama_cpp/llama.py", line 1 in create_chat_completion\n'
        '  File "synthfactory/engines/llamacpp.py", line 2 in _one\n'
        '  File "synthfactory/engines/base.py", line 3 in start_check\n')
    where = {"node_id": "abcdef0123456789", "worker_log": "/tmp/ray/w-7.err", "fault_report": str(report)}
    cause = crash_cause(SPEC, where, "at start")
    assert cause.startswith("engine llamacpp (model smollm2-135m-instruct) crashed at start with SIGSEGV "
                            "(Segmentation fault) during its one-token start check on node abcdef012345")
    assert "worker log: /tmp/ray/w-7.err" in cause and "\n" not in cause
    report.write_text("replica pid 8 on node n, worker log /x\n")  # SIGKILL leaves no report
    assert "no fault report (killed: SIGKILL or the out-of-memory killer?)" in crash_cause(SPEC, where, "at start")


class _Status(BaseHTTPRequestHandler):
    status = 500

    def do_GET(self):
        body = b'{"data": []}'
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"error": {"message": "prompt is too long"}}).encode()
        self.send_response(type(self).status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _server(status: int) -> ThreadingHTTPServer:
    handler = type("Handler", (_Status,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_openai_endpoints_down_are_infrastructure_and_a_refused_request_is_a_row():
    from synthfactory.engines.base import start_check_requests
    from synthfactory.engines.openai import OpenAIEngine

    opts = dict(max_retries=1, timeout_s=5.0)
    with pytest.raises(EngineFailure, match=r"no endpoint answers GET /models after 1 retries .*ConnectError"):
        OpenAIEngine(EngineSpec("openai", "m", {"base_urls": [f"http://127.0.0.1:{free_port()}/v1"], **opts}))
    failing, refusing = _server(500), _server(400)
    try:
        engine = OpenAIEngine(EngineSpec("openai", "m", {"base_urls": [f"http://127.0.0.1:{failing.server_port}/v1"],
                                                            **opts}))
        with pytest.raises(EngineFailure, match="failed on every try .*HTTP 500"):
            engine.chat(start_check_requests(False))
        engine = OpenAIEngine(EngineSpec("openai", "m", {"base_urls": [f"http://127.0.0.1:{refusing.server_port}/v1"],
                                                            **opts}))
        [result] = engine.chat(start_check_requests(False))
        assert result.error == f"engine_error: HTTP 400 from http://127.0.0.1:{refusing.server_port}/v1: " \
                               "prompt is too long"
    finally:
        failing.shutdown()
        refusing.shutdown()


def test_doctor_reports_the_build_and_a_one_token_generation():
    done = subprocess.run(cli_command("doctor", "--json"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["start_check"]["ok"] and report["non_portable"] == []
    assert report["use_extra_bufts"] == (not report["amx"])


def test_a_bug_of_ours_is_one_line_and_debug_shows_the_traceback(tmp_path):
    """An unexpected exception: one line naming --debug; with --debug, the traceback."""
    code = ("import sys, synthfactory.cli as c\n"
            "real = c.build_parser\n"
            "def parser():  # `versions` hits a bug of ours\n"
            "    p = real()\n"
            "    p._subparsers._group_actions[0].choices['versions'].set_defaults(func=lambda a: 1 / 0)\n"
            "    return p\n"
            "c.build_parser = parser\n"
            "sys.exit(c.main(sys.argv[1:]))\n")
    plain = subprocess.run([sys.executable, "-c", code, "versions", str(tmp_path)], capture_output=True, text=True)
    assert plain.returncode == 1 and plain.stderr.count("\n") == 1, plain.stderr
    assert plain.stderr.startswith("synthfactory: error: internal error (ZeroDivisionError: division by zero)")
    assert "--debug" in plain.stderr and "Traceback" not in plain.stderr
    debug = subprocess.run([sys.executable, "-c", code, "--debug", "versions", str(tmp_path)], capture_output=True,
                           text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ZeroDivisionError" in debug.stderr


def test_prefect_retries_transient_errors_but_not_our_failures():
    """A crashed engine or a bad recipe would only fail again, minutes later: no task retry."""
    from prefect.states import Failed

    from synthfactory.errors import RecipeError
    from tasks.units import _not_ours

    assert _not_ours(None, None, Failed(data=EngineFailure("engine crashed"))) is False
    assert _not_ours(None, None, Failed(data=RecipeError("bad"))) is False
    assert _not_ours(None, None, Failed(data=ConnectionError("blip"))) is True


def test_crash_cause_after_a_restart_names_the_log_of_the_process_that_crashed(tmp_path):
    from synthfactory.engines.crash import crash_cause

    report = tmp_path / "r.faults"
    report.write_text("replica pid 7 on node n1, worker log /logs/w-7.err\n"
                      "replica pid 9 on node n1, worker log /logs/w-9.err\n"
                      "Fatal Python error: Aborted\n\nCurrent thread 0x1 (most recent call first):\n"
                      '  File "synthfactory/engines/__init__.py", line 2 in create_engine\n')
    cause = crash_cause(SPEC, {"node_id": "n1", "worker_log": "/logs/w-7.err", "fault_report": str(report)},
                        "repeatedly")
    assert "crashed repeatedly with SIGABRT (Aborted) while loading the model" in cause
    assert "worker log: /logs/w-9.err" in cause
