"""python_tests and its sandbox, on the real bubblewrap (and the rlimits fallback via
SYNTHFACTORY_SANDBOX=rlimits): right code passes, wrong code fails with a reason, and hostile code
(reads, writes, network, fork bombs, 10 GB, 1 GB of output, sleeping, secrets) becomes a failed
verdict while nothing escapes and the next claim still verifies. The guard (audit hook) stops most
of these acts first (`unsafe_code`); with the event allowed, the same act reaches the sandbox,
which must contain it on its own (both layers tested)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from synthfactory.verify.base import Claim
from synthfactory.verify.python_tests import PythonTestsOptions, PythonTestsVerifier, extract_code
from synthfactory.verify.sandbox import SANDBOX_ENV, _descendants, sandbox_in_force, sandbox_kind
from synthfactory.verify.sandbox import _bwrap_path as sandbox_bwrap_path

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


# The wall limit for claims that must end on their own (right solutions, and wrong ones whose
# reason is tested): under bubblewrap, on 2 cores shared with another test (pytest-xdist's other
# worker running llama.cpp), a right solution can take seconds. Only hostile claims are tested
# against the short limits.
ENDS_ON_ITS_OWN_S = 30.0


def verifier(**options) -> PythonTestsVerifier:
    defaults = {"timeout_s": 3.0, "cpu_s": 3, "memory_mb": 256, "max_output_kb": 256, "max_processes": 16}
    return PythonTestsVerifier(PythonTestsOptions(**{**defaults, **options}))


def patient(**options) -> PythonTestsVerifier:
    """A verifier for claims that must end on their own: the same limits but the wall clock's."""
    return verifier(**{**options, "timeout_s": ENDS_ON_ITS_OWN_S})


def verify_then_right(response: str, tests: str = TESTS, **options):
    """The hostile claim's verdict; a right claim verified beside it (at the same time, in this
    process, with the same limits but the wall clock's: `patient`) still passes."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        hostile_future = pool.submit(verifier(**options).verify, Claim(response, {"tests": tests}))
        after = pool.submit(patient(**options).verify, Claim(RIGHT, {"tests": TESTS})).result()
        hostile = hostile_future.result()
    assert after.passed and after.reason == "ok", after
    assert not hostile.passed
    return hostile


# -- plain verdicts -------------------------------------------------------------------------

def test_right_wrong_and_malformed(mode):
    right, wrong, prose, broken, crash, silent = patient().verify_many([
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
    verdict = patient().verify(Claim(half_right, {"tests": TESTS}))
    assert verdict.reason == "tests_failed: AssertionError at test line 4"
    raising = block("def add(a, b):\n    return a / 0")
    verdict = patient().verify(Claim(raising, {"tests": TESTS}))
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
    first, second = patient().verify_many([Claim(exits, {"tests": TESTS}), Claim(wrong_and_loud, {"tests": TESTS})])
    assert (first.passed, first.reason) == (False, "solution_exited (exit 0)")
    assert (second.passed, second.reason) == (False, "tests_failed: AssertionError at test line 1")


def test_verify_many_keeps_order_in_parallel(mode):
    claims = [Claim(RIGHT if i % 2 else WRONG, {"tests": TESTS}) for i in range(6)]
    verdicts = patient(workers=3).verify_many(claims)
    assert [v.passed for v in verdicts] == [bool(i % 2) for i in range(6)]


def test_options_are_bounded_and_strict():
    with pytest.raises(ValidationError):
        PythonTestsOptions(timeout_s=0)
    with pytest.raises(ValidationError):
        PythonTestsOptions(memory_mb=10**9)
    with pytest.raises(ValidationError):
        PythonTestsOptions(timeout=5)  # a typo is an error
    assert PythonTestsVerifier.needs == ("tests|io_tests",) and PythonTestsVerifier.name == "python_tests"


def test_sandbox_in_force_says_which(monkeypatch):
    monkeypatch.delenv(SANDBOX_ENV, raising=False)
    assert sandbox_in_force() == "bubblewrap (no network, read-only root, pid namespace)"
    monkeypatch.setenv(SANDBOX_ENV, "rlimits")
    assert sandbox_in_force().startswith("rlimits only (opted in with SYNTHFACTORY_SANDBOX=rlimits)")
    monkeypatch.delenv(SANDBOX_ENV)
    monkeypatch.setenv("SYNTHFACTORY_BWRAP", "/nonexistent/bwrap")
    assert sandbox_in_force().startswith("none: python_tests refuses to run generated code (bwrap not found")


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
    guarded = verify_then_right(block("def steal():\n    return open('/etc/passwd').read()"), tests=returns(secret))
    assert guarded.reason == "unsafe_code: open" and guarded.details["unsafe"]["detail"] == "/etc/passwd"
    # the canary's folder is under /tmp: inside the sandbox that is its own empty tmpfs, not the host's
    in_tmp = verify_then_right(block(f"def steal():\n    return open({str(canary)!r}).read()"), tests=returns(secret))
    assert in_tmp.reason == "tests_failed: FileNotFoundError at test line 2"
    verdict = verify_then_right(block(f"def steal():\n    return open({str(canary)!r}).read()"), tests=returns(secret),
                                allow=("open",))
    assert verdict.reason == "tests_failed: FileNotFoundError at test line 2"
    verdict = verify_then_right(block("def steal():\n    return open('/etc/passwd').read()"),
                                tests="assert 'root:' in steal()", allow=("open",))
    assert verdict.reason == "tests_failed: FileNotFoundError at test line 1"
    home = Path.home() / f".sf-canary-{secrets.token_hex(4)}"
    home.write_text(secret)
    try:
        verdict = verify_then_right(
            block("import os\ndef steal():\n    return open(os.path.expanduser('~/' + NAME)).read()\n"
                  f"NAME = {home.name!r}"), tests=returns(secret), allow=("open", "environ"))
        assert not verdict.passed
        verdict = verify_then_right(block(f"def steal():\n    return open({str(home)!r}).read()"),
                                    tests=returns(secret), allow=("open",))
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
    assert verify_then_right(block(code), tests="assert wrote()").reason == "unsafe_code: open"
    verdict = verify_then_right(block(code), tests="assert wrote()", allow=("open",))
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
        assert verify_then_right(block(code), tests="assert call()").reason.startswith("unsafe_code: socket.")
        verdict = verify_then_right(block(code), tests="assert call()", allow=("socket.*",))
        assert verdict.reason.startswith("tests_failed: ConnectionRefusedError"), verdict
    finally:
        time.sleep(0.3)
        stop.set()
        watcher.join()
        listener.close()
    assert accepted == []


def _sandbox_trees() -> set[int]:
    """The verifier's own processes: this process's bubblewrap children and everything under them
    (not the session's servers, Ray's workers or the harness's processes, which come and go)."""
    import psutil

    bwrap = os.path.realpath(sandbox_bwrap_path() or "bwrap")
    found: set[int] = set()
    for child in psutil.Process().children():
        try:
            argv0 = child.cmdline()[0]
        except (psutil.Error, IndexError):
            continue
        if os.path.realpath(argv0) == bwrap:
            found |= {child.pid, *_descendants(child.pid)}
    return found


def test_a_fork_bomb_is_bounded_and_killed(bwrap):
    before = _sandbox_trees()  # none: no claim is being verified
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], len(_sandbox_trees() - before))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    bomb = block("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
    try:
        assert patient().verify(Claim(bomb, {"tests": TESTS})).reason == "unsafe_code: os.fork"
        verdict = verifier(max_processes=8, workers=1, allow=("os.fork",)).verify(Claim(bomb, {"tests": TESTS}))
    finally:
        done.set()
        watcher.join()
    assert verdict.reason in ("timeout", "crashed: SIGXCPU"), verdict
    assert 3 <= peak[0] <= 8 + 3 + 3  # the bomb ran, bounded by max_processes (+ bwrap's two, + the tests' sandbox)
    assert _sandbox_trees() - before == set()
    assert patient().verify(Claim(RIGHT, {"tests": TESTS})).passed


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
    assert verify_then_right(block(code), tests=tests).reason == "unsafe_code: environ"
    verdict = verify_then_right(block(code), tests=tests, allow=("environ", "open"))
    assert verdict.reason == "tests_failed: AssertionError at test line 2"
    raised = verify_then_right(block("import os\nraise RuntimeError(repr(dict(os.environ)))"), allow=("environ",))
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
    on_ray = patient(where="ray").verify_many(claims)
    assert [v.reason for v in on_ray] == ["ok", "tests_failed: AssertionError at test line 1"]

    @ray.remote(num_cpus=2)
    class Holder:
        def ready(self) -> bool:
            return True

    holder = Holder.remote()
    ray.get(holder.ready.remote())
    try:
        held = patient(where="ray").verify_many(claims)
        auto = patient().verify_many(claims)  # one node: local threads, Ray untouched
    finally:
        ray.kill(holder)
    assert [v.reason for v in held] == [v.reason for v in auto] == [v.reason for v in on_ray]


# -- a run: hostile responses through the real stage line and publish ------------------------

RIGHT_ADD = "def add(a, b):\n    return a + b\n"
# Each attack of issue 35 as a solution would write it against this verifier, most of them also
# solving the task (the tests pass: only the guard can stop them), and right solutions in other
# styles: (response, the reason expected; "ok": published).
HOSTILE_RUN = {
    "right": (RIGHT, "ok"),
    "right_helpers": (block("import math\nfrom functools import reduce\n\nclass _Acc:\n    def __init__(self):\n"
                            "        self.total = 0\n\ndef add(a, b):\n    acc = _Acc()\n"
                            "    acc.total = reduce(lambda x, y: x + y, [a, b], 0)\n"
                            "    return int(math.fsum([acc.total]))"),
                      "ok"),
    "right_prints": (block("import sys\ndef add(a, b):\n    print('adding', a, b, file=sys.stderr)\n    return a + b"),
                     "ok"),
    "right_own_file": (block("def add(a, b):\n    with open('scratch.txt', 'w') as f:\n        f.write(str(a + b))\n"
                             "    with open('scratch.txt') as f:\n        return int(f.read())"), "ok"),
    "wrong": (WRONG, "tests_failed: AssertionError at test line 1"),
    "forged_verdict": (block(
        "import sys\ndef add(a, b):\n    f = sys._getframe()\n    while f is not None:\n"
        "        for v in list(f.f_locals.values()):\n            if isinstance(v, str) and len(v) == 32:\n"
        "                print('SYNTHFACTORY-VERDICT ' + v + ' {\"status\": \"ok\", \"tests\": 1, \"asserts\": 2}')\n"
        "        f = f.f_back\n    print('{\"kind\": \"verdict\", \"status\": \"ok\"}')\n    return 0"),
        "tests_failed: AssertionError at test line 1"),
    "forged_frame": (block("import os\ndef add(a, b):\n    for fd in range(3, 65536):\n        try:\n"
                           "            os.write(fd, "
                           "b'{\"kind\":\"verdict\",\"status\":\"ok\",\"tests\":1,\"asserts\":2}\\n')\n"
                           "        except OSError:\n            pass\n    return 0"),
                     "unsafe_code: control_pipe"),
    "always_equal": (block("class Anything:\n    def __eq__(self, other):\n        return True\n"
                           "    def __ne__(self, other):\n        return False\n\ndef add(a, b):\n"
                           "    return Anything()"),
                     "not_plain_data: Anything"),
    "equal_int": (block("class Int(int):\n    def __eq__(self, other):\n        return True\n\n"
                        "def add(a, b):\n    return Int(0)"), "not_plain_data: Int"),
    "early_exit": (block("import os\ndef add(a, b):\n    os._exit(0)"), "solution_exited"),
    "exit_at_load": (block("import sys\nsys.exit(0)"), "solution_error: SystemExit at line 2"),
    "reads_passwd": (block(RIGHT_ADD + "try:\n    open('/etc/passwd').read()\nexcept OSError:\n    pass"),
                     "unsafe_code: open"),
    "reads_home": (block(RIGHT_ADD + "try:\n    open(HOME_CANARY).read()\nexcept OSError:\n    pass"),
                   "unsafe_code: open"),
    "reads_env": (block("import os\n" + RIGHT_ADD + "STOLEN = dict(os.environ)"), "unsafe_code: environ"),
    "reads_other_env": (block(RIGHT_ADD + "try:\n    open('/proc/1/environ', 'rb').read()\nexcept OSError:\n    pass"),
                        "unsafe_code: open"),
    "connects": (block("import socket\n" + RIGHT_ADD + "try:\n    socket.create_connection(('127.0.0.1', 22), 1)\n"
                       "except OSError:\n    pass"), "unsafe_code: socket.getaddrinfo"),
    "writes_outside": (block(RIGHT_ADD + "try:\n    open('/usr/planted', 'w').write('x')\nexcept OSError:\n    pass"),
                       "unsafe_code: open"),
    "kills_parent": (block("import os, signal\n" + RIGHT_ADD + "try:\n    os.kill(os.getppid(), signal.SIGKILL)\n"
                           "except OSError:\n    pass"), "unsafe_code: os.kill"),
    "threads": (block("import threading\n" + RIGHT_ADD + "for _ in range(10000):\n"
                      "    threading.Thread(target=lambda: None).start()"), "unsafe_code: thread"),
    "subprocess": (block("import subprocess\n" + RIGHT_ADD + "subprocess.run(['id'])"),
                   "unsafe_code: subprocess.Popen"),
    "ctypes": (block("import ctypes\n" + RIGHT_ADD), "unsafe_code: import ctypes"),
    "fork_bomb": (block("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
                  "unsafe_code: os.fork"),
    "sleep": (block("import time\ntime.sleep(10 ** 6)"), "timeout"),
    "print_flood": (block("import sys\nfor _ in range(16384):\n    sys.stdout.write('x' * 65536)"), "output_limit"),
    "ten_gigabytes": (block("x = bytearray(10 * 1024 ** 3)"), "memory_limit"),
}


def test_a_run_quarantines_every_attack_publishes_every_right_solution_and_leaks_nothing(
        tmp_path, bwrap, monkeypatch, caplog):
    """The hostile suite: a stub engine answers each task with one attack (or a right solution); the
    real stage line verifies them in the sandbox and publishes. Each attack is quarantined with its
    reason, every right solution is published, and neither the canary file in HOME nor the secret
    in the driver's environment is in any row, quarantine record, log line or file of the store."""
    from synthfactory import load_dataset_version
    from synthfactory.store import DatasetStore
    from tests.conftest import make_recipe
    from tests.test_driver import StubPool, _drive

    secret = "sk-" + secrets.token_hex(16)
    monkeypatch.setenv("SF_TEST_API_KEY", secret)
    home_canary = Path.home() / f".sf-canary-{secrets.token_hex(4)}"
    home_canary.write_text(secret)
    responses = {f"Task {name}: write add(a, b).": text.replace("HOME_CANARY", repr(str(home_canary)))
                 for name, (text, _) in HOSTILE_RUN.items()}
    expected = {f"Task {name}: write add(a, b).": reason for name, (_, reason) in HOSTILE_RUN.items()}
    seeds = [{"task": task, "tests": TESTS} for task in responses]
    (tmp_path / "code.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds))
    suite = {"name": "code", "expectations": [
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]}
    recipe = make_recipe(tmp_path, name="code", suite=suite, seeds__path="code.jsonl", seeds__format="jsonl",
                         generation__prompt_template="{{ task }}", batches__size=len(seeds), batches__count=1,
                         quality__embeddings=False, quality__dedup={"enabled": False},
                         quality__filters={"min_chars": 1, "language": None, "max_repeated_ngram_ratio": 1.0,
                                           "instruction_echo": False},
                         verification=[{"name": "code", "method": "python_tests",
                                        # one limit for all: "sleep" waits it out; the rest end on their own
                                        "options": {"timeout_s": 10, "cpu_s": 2, "max_output_kb": 256}}])
    import yaml

    data = yaml.safe_load(recipe.read_text())
    data.pop("grading")
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))

    class HostilePool(StubPool):
        @staticmethod
        def explain(prompt: str) -> str:
            return responses[prompt]

    caplog.set_level("DEBUG")
    try:
        summary = _drive(recipe, tmp_path / "store", HostilePool())
    finally:
        home_canary.unlink()

    assert summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"] == len(seeds)
    store = DatasetStore(str(tmp_path / "store" / "code"))
    quarantine = store.read_quarantine().to_pylist()
    got = {json.loads(q["row"])["prompt"]: q["reason"].removeprefix("verify_failed: code: ") for q in quarantine}
    rows = load_dataset_version(str(tmp_path / "store" / "code")).to_list()
    got.update({row["prompt"]: "ok" for row in rows})
    assert got == expected
    assert all(q["stage"] == "verify" for q in quarantine)
    assert summary["accepted"] == len(rows) == sum(reason == "ok" for reason in expected.values())
    everything = json.dumps(rows, default=str) + json.dumps(quarantine, default=str) + caplog.text
    everything += "".join(p.read_bytes().decode("latin-1") for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert secret not in everything


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


# -- plain data, io_tests, failing closed ------------------------------------------------------

def test_only_exact_plain_data_crosses():
    from synthfactory.verify import plain

    value = [None, True, 7, 2 ** 80, 2.5, float("inf"), -0.0, 1 + 2j, "é", b"\x00\xff", (1, (2,)), {3}, frozenset({4}),
             {"k": [1], (1, 2): None}]
    back = plain.decode(json.loads(plain.dumps({"v": plain.encode(value)}))["v"])
    assert back == value and [type(x) for x in back] == [type(x) for x in value]
    assert str(back[6]) == "-0.0"

    class Loose(str):
        def __eq__(self, other):
            return True

    for bad, name in ((Loose("x"), "Loose"), ([1, object()], "object"), ({"k": {1: range(3)}}, "range")):
        with pytest.raises(plain.NotPlain) as raised:
            plain.encode(bad)
        assert raised.value.type_name == name
    for forged in (["D", ["L"], 1], ["X"], 1.5, {"a": 1}, ["S", ["L"]], ["f", 1], ["b", "zz"]):
        with pytest.raises(ValueError):
            plain.decode(forged)


def test_an_exception_crosses_as_its_name_and_message_and_tests_can_catch_it(bwrap):
    code = block("def root(x):\n    if x < 0:\n        raise ValueError('negative: ' + str(x))\n    return x ** 0.5\n\n"
                 "class Custom(Exception):\n    pass\n\ndef boom():\n    raise Custom('custom')")
    tests = ("assert root(9) == 3.0\ntry:\n    root(-1)\nexcept ValueError as e:\n    assert str(e) == 'negative: -1'\n"
             "else:\n    assert False\ntry:\n    boom()\nexcept Exception as e:\n"
             "    assert type(e).__name__ == 'Custom'\n")
    verdict = patient().verify(Claim(code, {"tests": tests}))
    assert verdict.passed, verdict
    assert verdict.details["calls"] == 3
    passes_function = patient().verify(Claim(code, {"tests": "assert root(abs) == 1"}))
    assert passes_function.reason == "tests_unusable: passes builtin_function_or_method (only plain data crosses)"


IO_CASES = [{"input": "3 4\n", "output": "7\n"}, {"input": "-1 1\n", "output": "0"}]


def test_io_tests_compare_each_case_output(mode):
    claims = {
        "right": block("a, b = map(int, input().split())\nprint(a + b)"),
        "wrong": block("a, b = map(int, input().split())\nprint(a - b)"),
        "extra_line": block("a, b = map(int, input().split())\nprint(a + b)\nprint('debug')"),
        "raises": block("a, b = map(int, input().split())\nprint(a // 0)"),
        "exit_code": block("import sys\nsys.exit(3)"),
        "os_exit_after_output": block("import os, sys\na, b = map(int, input().split())\nprint(a + b)\n"
                                      "sys.stdout.flush()\nos._exit(0)"),
        "reads_env": block("import os\nprint(os.environ.get('AWS_SECRET_ACCESS_KEY'))"),
        "sleeps": block("import time\ntime.sleep(60)"),
    }
    ending = [name for name in claims if name != "sleeps"]  # all but "sleeps" end on their own
    with ThreadPoolExecutor(max_workers=2) as pool:  # "sleeps" under the short limit, beside the others
        sleeps = pool.submit(verifier(timeout_s=2).verify, Claim(claims["sleeps"], {"io_tests": IO_CASES}))
        verdicts = patient().verify_many([Claim(claims[name], {"io_tests": IO_CASES}) for name in ending])
        got = {name: v.reason for name, v in zip(ending, verdicts, strict=True)} | {"sleeps": sleeps.result().reason}
    assert got == {"right": "ok", "wrong": "tests_failed: case 1: line 1 differs",
                   "extra_line": "tests_failed: case 1: 2 lines, expected 1",
                   "raises": "solution_error: ZeroDivisionError at line 2 (case 1)",
                   "exit_code": "solution_error: exit 3 (case 1)", "os_exit_after_output": "ok",
                   "reads_env": "unsafe_code: environ", "sleeps": "timeout"}
    assert verdicts[0].details["cases"] == 2
    third = "print(1 / 3)"
    assert patient().verify(Claim(block(third), {"io_tests": [{"input": "", "output": "0.333333"}]})).reason == \
        "tests_failed: case 1: line 1 differs"
    assert patient(float_tolerance=1e-5).verify(Claim(block(third), {"io_tests": [{"input": "", "output": "0.333333"}]}
                                                       )).passed
    assert patient().verify(Claim(block(third), {"io_tests": "3 4"})).reason == \
        "tests_unusable: io_tests is not a list of {input, output}"


def test_without_bubblewrap_a_code_run_exits_2_before_any_engine_unless_opted_in(tmp_path):
    """The fallback fails closed: bwrap missing (SYNTHFACTORY_BWRAP names one that is not there),
    `synthfactory run` on the code recipe exits 2 with one line naming the fix, before Ray or any
    engine starts; doctor says which sandbox is in force."""
    import subprocess

    from tests.conftest import ROOT, cli_command

    env = {**os.environ, "SYNTHFACTORY_BWRAP": str(tmp_path / "no-bwrap"), "PYTHONUNBUFFERED": "1"}
    env.pop(SANDBOX_ENV, None)
    done = subprocess.run(cli_command("run", str(ROOT / "recipes" / "code.yaml"), "--store", str(tmp_path / "store"),
                                      "--no-prefect"), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synthfactory: error: verification 'tests' (python_tests): "
                                                   "generated code will not run without the bubblewrap sandbox")
    assert "SYNTHFACTORY_SANDBOX=rlimits" in lines[0] and "apt-get install bubblewrap" in lines[0]
    assert not (tmp_path / "store").exists()
    doctor = subprocess.run(cli_command("doctor"), env=env, capture_output=True, text=True, timeout=120)
    assert "none: python_tests refuses to run generated code" in doctor.stdout + doctor.stderr


def test_attacks_on_the_relay_and_the_guard_fail_and_honest_stdlib_use_passes(bwrap):
    """Written against this verifier by a reviewer: a solution's own `abs` shadowing the tests'
    builtin, a StopIteration that would end the tests' `all(map(...))` early, a path object whose
    `__str__` and `__fspath__` disagree (and whose methods would run inside the guard), NaN in a
    frame; and honest code that reads PATH/TMPDIR through the standard library or returns a
    9,000-digit int."""
    shadow = block("def add(a, b):\n    return 0\n\ndef abs(x):\n    return 0")
    stop = block("def add(a, b):\n    raise StopIteration")
    fake_path = block("import io\nclass P:\n    def __fspath__(self):\n        return '/etc/hostname'\n"
                      "    def __str__(self):\n        return '/sandbox/x'\nP.__name__ = 'PosixPath'\n"
                      "P.__module__ = 'pathlib'\n" + RIGHT_ADD
                      + "try:\n    io.FileIO(P()).read()\nexcept OSError:\n    pass")
    nan_frame = block("import os\ndef add(a, b):\n    for fd in range(3, 65536):\n        try:\n"
                      "            os.write(fd, b'{\"kind\":\"return\",\"value\":NaN}\\n')\n"
                      "        except OSError:\n            pass\n    return a + b")
    stdlib = block("import shutil, tempfile\n" + RIGHT_ADD + "assert shutil.which('sh') or True\n"
                   "with tempfile.TemporaryFile() as f:\n    f.write(b'x')")
    big = block("import math\ndef add(a, b):\n    return math.factorial(3000) + a + b - math.factorial(3000)\n\n"
                "def big():\n    return math.factorial(3000)")
    claims = [(shadow, "assert abs(add(1, 2) - 3) < 1e-9"), (stop, "assert all(map(lambda x: add(x, 0), [1, 2]))"),
              (fake_path, TESTS), (nan_frame, TESTS), (stdlib, TESTS),
              (big, TESTS + "import math\nassert big() == math.factorial(3000)")]
    verdicts = patient().verify_many([Claim(response, {"tests": tests}) for response, tests in claims])
    assert [v.reason for v in verdicts] == [
        "tests_failed: AssertionError at test line 1", "tests_failed: StopIteration at test line 1",
        "unsafe_code: open", "unsafe_code: control_pipe", "ok", "ok"], verdicts
    assert verdicts[2].details["unsafe"]["detail"] == "<PosixPath>"  # never str()-ed: its name only
