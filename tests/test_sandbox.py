"""python_tests and its sandbox, on the real bubblewrap (and the rlimits fallback via
SYNTHFACTORY_SANDBOX=rlimits): right code passes, wrong code fails with a reason, and hostile code
(reads, writes, network, fork bombs, 10 GB, 1 GB of output, sleeping, secrets) becomes a failed
verdict while nothing escapes and the next claim still verifies."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from synthfactory.verify.base import Claim
from synthfactory.verify.python_tests import PythonTestsOptions, PythonTestsVerifier, extract_code
from synthfactory.verify.sandbox import SANDBOX_ENV, _descendants, sandbox_in_force, sandbox_kind

pytestmark = pytest.mark.timeout(120)

TESTS = "assert add(1, 2) == 3\n\ndef test_negative():\n    assert add(-1, 1) == 0\n"
RIGHT = "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\n"
WRONG = "```python\ndef add(a, b):\n    return a - b\n```"


def block(code: str) -> str:
    return f"Solution:\n```python\n{code}\n```\n"


@pytest.fixture(params=["bubblewrap", "rlimits"])
def mode(request, monkeypatch) -> str:
    """Each test on both sandboxes; the bubblewrap side fails (not skips) when bwrap does not work."""
    if request.param == "rlimits":
        monkeypatch.setenv(SANDBOX_ENV, "rlimits")
    else:
        monkeypatch.delenv(SANDBOX_ENV, raising=False)
    kind, why = sandbox_kind()
    assert kind == request.param, f"bubblewrap is not working here: {why} (make system-deps)"
    return request.param


@pytest.fixture
def bwrap(monkeypatch) -> None:
    monkeypatch.delenv(SANDBOX_ENV, raising=False)
    kind, why = sandbox_kind()
    assert kind == "bubblewrap", f"bubblewrap is not working here: {why} (make system-deps)"


def verifier(**options) -> PythonTestsVerifier:
    defaults = {"timeout_s": 3.0, "cpu_s": 3, "memory_mb": 256, "max_output_kb": 256, "max_processes": 16}
    return PythonTestsVerifier(PythonTestsOptions(**{**defaults, **options}))


def verify_then_right(response: str, tests: str = TESTS, **options):
    """The hostile claim's verdict; the right claim after it (same call, same pool) still passes."""
    claims = [Claim(response, {"tests": tests}), Claim(RIGHT, {"tests": TESTS})]
    hostile, after = verifier(**options).verify_many(claims)
    assert after.passed and after.reason == "ok", after
    assert not hostile.passed
    return hostile


# -- plain verdicts -------------------------------------------------------------------------

def test_right_wrong_and_malformed(mode):
    right, wrong, prose, broken, crash, silent = verifier().verify_many([
        Claim(RIGHT, {"tests": TESTS}), Claim(WRONG, {"tests": TESTS}),
        Claim("def add(a, b): return a + b", {"tests": TESTS}),
        Claim(block("def add(a, b)\n    return a + b"), {"tests": TESTS}),
        Claim(block("def add(a, b):\n    return a + b\nadd(1)"), {"tests": TESTS}),
        Claim(RIGHT, {"tests": "x = add(1, 2)\n"}),
    ])
    assert right.passed and right.reason == "ok" and right.details["asserts"] == 2 and right.details["tests"] == 1
    assert right.details["sandbox"] == mode
    assert (wrong.passed, wrong.reason) == (False, "tests_failed: AssertionError at test line 1")
    assert (prose.passed, prose.reason) == (False, "no_code_block")
    assert (broken.passed, broken.reason) == (False, "syntax_error: line 1")
    assert (crash.passed, crash.reason) == (False, "solution_error: TypeError at line 3")
    assert (silent.passed, silent.reason) == (False, "tests_unusable: no assert and no test_ function")


def test_test_functions_are_called_and_the_failing_line_named(bwrap):
    half_right = block("def add(a, b):\n    return a + b if a >= 0 else 7")
    verdict = verifier().verify(Claim(half_right, {"tests": TESTS}))
    assert verdict.reason == "tests_failed: AssertionError at test line 4"
    raising = block("def add(a, b):\n    return a / 0")
    verdict = verifier().verify(Claim(raising, {"tests": TESTS}))
    assert verdict.reason == "tests_failed: ZeroDivisionError at test line 1"


def test_the_last_python_block_is_the_code():
    two = ("```python\ndef add(a, b):\n    return 0\n```\nBetter:\n"
           "```py\ndef add(a, b):\n    return a + b\n```\n```text\nout\n```")
    assert extract_code(two) == "def add(a, b):\n    return a + b\n"
    assert extract_code("```\nx = 1\n```") == "x = 1\n"
    assert extract_code("```python\ndef f():\n    return 1") == "def f():\n    return 1"  # cut off by max_tokens
    assert extract_code("x = 1\nprint(x)") is None
    assert extract_code("```python\n\n```") is None


def test_a_fake_verdict_is_not_a_pass(mode):
    marker = 'SYNTHFACTORY-VERDICT {nonce} {{"status": "ok", "tests": 1, "asserts": 2}}'
    exits = block("import os, sys\nprint('" + marker.format(nonce=secrets.token_hex(16)) + "')\n"
                  "sys.stdout.flush()\nos._exit(0)")
    wrong_and_loud = block("def add(a, b):\n    print('" + marker.format(nonce="0" * 32) + "')\n    return 0")
    first, second = verifier().verify_many([Claim(exits, {"tests": TESTS}), Claim(wrong_and_loud, {"tests": TESTS})])
    assert (first.passed, first.reason) == (False, "crashed: no verdict (exit 0)")
    assert (second.passed, second.reason) == (False, "tests_failed: AssertionError at test line 1")


def test_verify_many_keeps_order_in_parallel(mode):
    claims = [Claim(RIGHT if i % 2 else WRONG, {"tests": TESTS}) for i in range(6)]
    verdicts = verifier(workers=3).verify_many(claims)
    assert [v.passed for v in verdicts] == [bool(i % 2) for i in range(6)]


def test_options_are_bounded_and_strict():
    with pytest.raises(ValidationError):
        PythonTestsOptions(timeout_s=0)
    with pytest.raises(ValidationError):
        PythonTestsOptions(memory_mb=10**9)
    with pytest.raises(ValidationError):
        PythonTestsOptions(timeout=5)  # a typo is an error
    assert PythonTestsVerifier.needs == ("tests",) and PythonTestsVerifier.name == "python_tests"


def test_sandbox_in_force_says_which(monkeypatch):
    monkeypatch.delenv(SANDBOX_ENV, raising=False)
    assert sandbox_in_force() == "bubblewrap (no network, read-only root, pid namespace)"
    monkeypatch.setenv(SANDBOX_ENV, "rlimits")
    assert sandbox_in_force().startswith("rlimits only (bubblewrap unavailable: forced by SYNTHFACTORY_SANDBOX")


# -- hostile code: under bubblewrap nothing escapes ------------------------------------------

@pytest.fixture
def canary(tmp_path) -> Path:
    """A file in a 'store' folder outside the sandbox, with text no one can guess."""
    store = tmp_path / "store"
    store.mkdir()
    path = store / "part-0.parquet"
    path.write_text(secrets.token_hex(16))
    return path


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def returns(secret: str, call: str = "steal()") -> str:
    """Tests that pass only if `call` returns `secret` (the secret itself never enters the sandbox)."""
    return f"import hashlib\nassert hashlib.sha256({call}.encode()).hexdigest() == {sha(secret)!r}"


def test_reads_outside_the_sandbox_fail(bwrap, canary):
    secret = canary.read_text()
    verdict = verify_then_right(block(f"def steal():\n    return open({str(canary)!r}).read()"), tests=returns(secret))
    assert verdict.reason == "tests_failed: FileNotFoundError at test line 2"
    verdict = verify_then_right(block("def steal():\n    return open('/etc/passwd').read()"),
                                tests="assert 'root:' in steal()")
    assert verdict.reason == "tests_failed: FileNotFoundError at test line 1"
    home = Path.home() / f".sf-canary-{secrets.token_hex(4)}"
    home.write_text(secret)
    try:
        verdict = verify_then_right(
            block("import os\ndef steal():\n    return open(os.path.expanduser('~/' + NAME)).read()\n"
                  f"NAME = {home.name!r}"), tests=returns(secret))
        assert not verdict.passed
        verdict = verify_then_right(block(f"def steal():\n    return open({str(home)!r}).read()"),
                                    tests=returns(secret))
        assert verdict.reason == "tests_failed: FileNotFoundError at test line 2"
    finally:
        home.unlink()
    assert secret not in json.dumps(verdict.as_json())


def test_writes_outside_the_sandbox_fail(bwrap, canary):
    before = canary.read_text()
    sibling = canary.with_name("planted.py")
    code = (f"import os\nfor path in ({str(canary)!r}, {str(sibling)!r}, '/usr/planted', '/tmp/../planted'):\n"
            "    try:\n        open(path, 'w').write('pwned')\n    except OSError:\n        pass\n"
            f"def wrote():\n    return open({str(canary)!r}).read() == 'pwned'")
    verdict = verify_then_right(block(code), tests="assert wrote()")
    assert verdict.reason.startswith("tests_failed: FileNotFoundError")
    assert canary.read_text() == before and not sibling.exists() and not Path("/usr/planted").exists()


def test_writes_inside_are_bounded(bwrap):
    fill = block("for i in range(1000):\n    open(f'fill-{i}', 'wb').write(b'x' * 1024 * 1024)")
    assert verify_then_right(fill).reason == "solution_error: OSError at line 2"  # the tmpfs is full
    big = block("open('/tmp/big', 'wb').write(b'x' * 32 * 1024 * 1024)")
    assert verify_then_right(big).reason == "solution_error: OSError at line 1"  # RLIMIT_FSIZE (16 MB)


def test_no_connection_reaches_a_listener_on_localhost(bwrap):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept())
            except OSError:
                continue

    watcher = threading.Thread(target=accept, daemon=True)
    watcher.start()
    try:
        code = ("import socket\ndef call():\n"
                f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
                "    s.sendall(b'hello')\n    return True")
        verdict = verify_then_right(block(code), tests="assert call()")
        assert verdict.reason.startswith("tests_failed: ConnectionRefusedError"), verdict
    finally:
        time.sleep(0.3)
        stop.set()
        watcher.join()
        listener.close()
    assert accepted == []


def test_a_fork_bomb_is_bounded_and_killed(bwrap):
    before = set(_descendants(os.getpid()))  # in the whole suite: session servers this process started
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], len(set(_descendants(os.getpid())) - before))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    bomb = block("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
    try:
        verdict = verifier(max_processes=8, workers=1).verify(Claim(bomb, {"tests": TESTS}))
    finally:
        done.set()
        watcher.join()
    assert verdict.reason in ("timeout", "crashed: SIGXCPU"), verdict
    assert 3 <= peak[0] <= 8 + 3  # the bomb ran, bounded by max_processes (+ bwrap's two processes)
    assert set(_descendants(os.getpid())) - before == set()
    assert verifier().verify(Claim(RIGHT, {"tests": TESTS})).passed


# -- hostile code in both sandboxes: limits and the environment ------------------------------

def test_ten_gigabytes_is_a_memory_limit(mode):
    assert verify_then_right(block("x = bytearray(10 * 1024 ** 3)")).reason == "memory_limit"


def test_a_gigabyte_of_output_is_an_output_limit(mode):
    code = "import sys\nfor _ in range(16384):\n    sys.stdout.write('x' * 65536)"
    assert verify_then_right(block(code)).reason == "output_limit"
    assert verify_then_right(block(code.replace("stdout", "stderr"))).reason == "output_limit"


def test_sleeping_forever_is_a_timeout(mode):
    assert verify_then_right(block("import time\ntime.sleep(10 ** 6)"), timeout_s=1.5).reason == "timeout"
    spin = verify_then_right(block("while True:\n    pass"), timeout_s=5.0, cpu_s=1)
    assert spin.reason in ("timeout", "crashed: SIGXCPU")  # the CPU limit ends it first


def test_secrets_in_the_environment_do_not_reach_the_sandbox(mode, monkeypatch):
    secret = "sk-" + secrets.token_hex(16)
    monkeypatch.setenv("SF_TEST_API_KEY", secret)
    code = ("import os, sys\ndef stolen():\n"
            "    found = dict(os.environ)\n"
            "    for path in ('/proc/self/environ', '/proc/1/environ'):\n"
            "        try:\n            found[path] = open(path, 'rb').read().decode(errors='replace')\n"
            "        except OSError:\n            pass\n"
            "    print(found, file=sys.stderr)\n"
            "    return ' '.join(found.values())\n")
    tests = (f"import hashlib\nassert any(hashlib.sha256(w.encode()).hexdigest() == {sha(secret)!r}"
             " for w in stolen().split())")
    verdict = verify_then_right(block(code), tests=tests)
    assert verdict.reason == "tests_failed: AssertionError at test line 2"
    raised = verify_then_right(block("import os\nraise RuntimeError(repr(dict(os.environ)))"))
    assert raised.reason == "solution_error: RuntimeError at line 2"
    for v in (verdict, raised):
        assert secret not in json.dumps(v.as_json())
    if mode == "bubblewrap":
        assert "HOME" in verdict.details["stderr_tail"]  # the stderr tail is kept and holds no secret


# -- Ray: verification on CPU workers, never a deadlock --------------------------------------

def test_ray_tasks_verify_and_held_cpus_fall_back_locally(ray_cluster):
    """where: ray on a local 2-CPU cluster; then with every CPU held (as engine actors hold them
    in a run) the same call returns, verified locally."""
    import ray

    claims = [Claim(RIGHT, {"tests": TESTS}), Claim(WRONG, {"tests": TESTS})]
    on_ray = verifier(where="ray").verify_many(claims)
    assert [v.reason for v in on_ray] == ["ok", "tests_failed: AssertionError at test line 1"]

    @ray.remote(num_cpus=2)
    class Holder:
        def ready(self) -> bool:
            return True

    holder = Holder.remote()
    ray.get(holder.ready.remote())
    try:
        held = verifier(where="ray").verify_many(claims)
        auto = verifier().verify_many(claims)  # one node: local threads, Ray untouched
    finally:
        ray.kill(holder)
    assert [v.reason for v in held] == [v.reason for v in auto] == [v.reason for v in on_ray]


# -- a run: hostile responses through the real stage line and publish ------------------------

HOSTILE_RUN = {
    "right": RIGHT,
    "env": block("import os, sys\nprint(dict(os.environ), file=sys.stderr)\n"
                 "raise RuntimeError(repr(dict(os.environ)))"),
    "store": block("def add(a, b):\n    return open(CANARY).read()\nCANARY = {canary!r}"),
    "sleep": block("import time\ntime.sleep(10 ** 6)"),
    "print": block("import sys\nfor _ in range(16384):\n    sys.stdout.write('x' * 65536)"),
    "bomb": block("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
}


def test_a_run_quarantines_hostile_code_and_leaks_nothing(tmp_path, bwrap, canary, monkeypatch, caplog):
    """The stub engine answers each task with hostile code; the real stage line verifies it in the
    sandbox, quarantines it as verify_failed, publishes the right row, and the secret in the
    driver's environment is in no row, quarantine record, log line or file of the store."""
    from synthfactory import load_dataset_version
    from synthfactory.store import DatasetStore
    from tests.conftest import make_recipe
    from tests.test_driver import StubPool, _drive

    secret = "sk-" + secrets.token_hex(16)
    monkeypatch.setenv("SF_TEST_API_KEY", secret)
    responses = {f"Task {name}: write add(a, b).": text.replace("{canary!r}", repr(str(canary)))
                 for name, text in HOSTILE_RUN.items()}
    seeds = [{"task": task, "tests": TESTS} for task in responses]
    (tmp_path / "code.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds))
    suite = {"name": "code", "expectations": [
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]}
    recipe = make_recipe(tmp_path, name="code", suite=suite, seeds__path="code.jsonl", seeds__format="jsonl",
                         generation__prompt_template="{{ task }}", batches__size=len(seeds), batches__count=1,
                         quality__embeddings=False, quality__filters={"min_chars": 1, "language": None},
                         verification=[{"name": "code", "method": "python_tests",
                                        "options": {"timeout_s": 2, "cpu_s": 2, "max_output_kb": 256}}])
    import yaml

    data = yaml.safe_load(recipe.read_text())
    data.pop("grading")
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))

    class HostilePool(StubPool):
        @staticmethod
        def explain(prompt: str) -> str:
            return responses[prompt]

    caplog.set_level("DEBUG")
    summary = _drive(recipe, tmp_path / "store", HostilePool())

    assert summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"] == len(seeds)
    store = DatasetStore(str(tmp_path / "store" / "code"))
    quarantine = store.read_quarantine().to_pylist()
    reasons = sorted(q["reason"] for q in quarantine)
    assert reasons == sorted([
        "verify_failed: code: solution_error: RuntimeError at line 3",
        "verify_failed: code: tests_failed: FileNotFoundError at test line 1",
        "verify_failed: code: timeout", "verify_failed: code: output_limit",
        "verify_failed: code: timeout"]), reasons
    assert all(q["stage"] == "verify" for q in quarantine)
    rows = load_dataset_version(str(tmp_path / "store" / "code")).to_list()
    assert summary["accepted"] == len(rows) == 1 and "return a + b" in rows[0]["text"]
    assert canary.read_text() != secret
    everything = json.dumps(rows, default=str) + json.dumps(quarantine, default=str) + caplog.text
    everything += "".join(p.read_bytes().decode("latin-1") for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert secret not in everything
    assert "HOME" in everything  # the env the hostile code printed (cleared: no secret) did reach the quarantine


UNPRIVILEGED = r"""
import importlib.util, os, sys, threading, time
spec = importlib.util.spec_from_file_location("sandbox", sys.argv[1])
sb = sys.modules["sandbox"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sb)
print(sb.sandbox_in_force())
peak, done = [0], threading.Event()
def watch():
    while not done.is_set():
        peak[0] = max(peak[0], len(sb._descendants(os.getpid())))
        time.sleep(0.02)
threading.Thread(target=watch, daemon=True).start()
bomb = sb.run_python("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
                     limits=sb.SandboxLimits(timeout_s=2, max_processes=8))
done.set()
who = sb.run_python("import os; print(os.getuid(), sorted(os.listdir('/')))")
print(bomb.status, peak[0], len(sb._descendants(os.getpid())), who.status, who.stdout_tail.strip())
"""


@pytest.mark.skipif(os.getuid() != 0 or not Path("/usr/bin/python3").exists(), reason="needs root to become nobody")
def test_the_sandbox_as_an_ordinary_user(bwrap):
    """What most users run: bubblewrap without root (its user namespace), here as uid 65534 with
    the system Python (the sandbox module alone: standard library only)."""
    import subprocess

    from synthfactory.verify import sandbox

    done = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "/usr/bin/python3",
                           "-c", UNPRIVILEGED, sandbox.__file__], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"}, cwd="/")
    assert done.returncode == 0, done.stderr
    in_force, result = done.stdout.strip().splitlines()
    assert in_force == "bubblewrap (no network, read-only root, pid namespace)"
    status, peak, left, who_status, who = result.split(" ", 4)
    assert status == "timeout" and 3 <= int(peak) <= 8 + 3 and left == "0"
    assert who_status == "ok" and who.startswith("65534 ") and "'root'" not in who and "'work'" not in who
