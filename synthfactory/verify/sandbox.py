"""Run an untrusted Python program in a sandbox nothing escapes, and say what happened.

Under bubblewrap (`/usr/bin/bwrap`, Debian `bubblewrap`) the program runs in new pid, network,
ipc and uts namespaces (no network at all, only its own processes visible, killed as one tree
when the sandbox's init dies or the caller dies), with a root of read-only binds of only what the
interpreter needs (`/usr` and the Python installation, `sys.base_prefix`: never `/root`, `/etc`,
the store or `/work`), a minimal `/proc` and `/dev`, a size-capped tmpfs as the only writable place
(its working dir and HOME), an environment cleared to PATH/HOME/LANG, and the base interpreter run
isolated and without site-packages (`python -I -S`: the standard library only).

Limits, set by our prelude before the program runs: CPU seconds (RLIMIT_CPU), address space
(RLIMIT_AS), file size (RLIMIT_FSIZE), open files (RLIMIT_NOFILE), processes (RLIMIT_NPROC), no core
files; output is read in chunks and the sandbox killed once it passes a cap (nothing is buffered
beyond the cap); a wall timeout kills the whole tree. RLIMIT_NPROC does not bind uid 0, so when we
run as root the prelude drops to a fresh random unprivileged uid (its own process count, no
capabilities); without root, bubblewrap's user namespace gives the sandbox its own count.

Fallback, where bubblewrap is missing or its self-test fails (or `SYNTHFACTORY_SANDBOX=rlimits`):
the same prelude and limits, `python -I -S` in a fresh temp dir with a cleared environment, killed
by process group. It is *not* isolation: the program can read any file the user can (including
`/proc/<pid>/environ` of the user's processes), use the network, and, as root with the Python
installation under a private home, fork without a process bound (no uid to drop to). It is logged
once as a warning and `sandbox_in_force()` (shown by `synthfactory doctor`) says so.
"""

from __future__ import annotations

import logging
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

SandboxStatus = Literal["ok", "failed", "timeout", "memory", "output_limit", "crashed"]
SANDBOX_ENV = "SYNTHFACTORY_SANDBOX"  # "rlimits" opts in to the fallback; otherwise bubblewrap or nothing
BWRAP_ENV = "SYNTHFACTORY_BWRAP"  # the bwrap to use (default: bwrap on PATH, else /usr/bin/bwrap)
WORKDIR = "/sandbox"  # inside bubblewrap: the only writable place, cwd and HOME
TAIL_BYTES = 4096

# The trusted prelude, run as `python -I -S -c PRELUDE`: reads its limits (one line) and the
# program (length-prefixed) from stdin, sets the limits, drops root, then runs the program; the
# rest of stdin is the program's input. The program finds the numbers of its control pipes (from
# and to the verifier; -1 when it has none) as `__sandbox_fds__`. Hard limits equal the soft ones
# (CPU: one second more) so the program cannot raise them.
PRELUDE = r"""
import os, resource, sys
_c = [int(x) for x in sys.stdin.buffer.readline().split()]
resource.setrlimit(resource.RLIMIT_CPU, (_c[0], _c[0] + 1))  # SIGXCPU first, SIGKILL a second later
for _k, _v in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_AS, _c[1]), (resource.RLIMIT_FSIZE, _c[2]),
               (resource.RLIMIT_NOFILE, _c[3]), (resource.RLIMIT_NPROC, _c[4])):
    resource.setrlimit(_k, (_v, _v))
if _c[5] and os.getuid() == 0:
    os.setgroups([]); os.setresgid(_c[5], _c[5], _c[5]); os.setresuid(_c[5], _c[5], _c[5])
_src = sys.stdin.buffer.read(_c[6])
_g = {"__name__": "__main__", "__builtins__": __builtins__, "__sandbox_fds__": (_c[7], _c[8])}
del _c, _k, _v
exec(compile(_src, "<program>", "exec"), _g)
"""


@dataclass(frozen=True)
class SandboxLimits:
    """What one sandboxed program may use."""

    timeout_s: float = 5.0  # wall clock, the whole tree
    cpu_s: int = 5
    memory_mb: int = 512  # address space per process
    max_output_kb: int = 1024  # stdout + stderr together
    max_processes: int = 8  # processes and threads of the sandbox's uid (worst case: max_processes x memory_mb)
    file_size_mb: int = 16  # largest file it may write
    open_files: int = 64
    tmp_mb: int = 64  # the writable tmpfs (bubblewrap only)


@dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed program ended: `status`, its exit code (None if killed by us), the signal
    that ended it, bounded tails of its output, and the wall seconds it took."""

    status: SandboxStatus
    exit_code: int | None
    signal: str | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    wall_s: float = 0.0
    sandbox: str = "bubblewrap"  # or "rlimits"


def base_python() -> tuple[str, str]:
    """The base interpreter (not a venv's launcher) and the installation directory it needs."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return exe, os.path.realpath(sys.base_prefix)


def _bwrap_path() -> str | None:
    chosen = os.environ.get(BWRAP_ENV)
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    return shutil.which("bwrap") or (("/usr/bin/bwrap") if os.access("/usr/bin/bwrap", os.X_OK) else None)


def _bwrap_args(bwrap: str, limits: SandboxLimits) -> list[str]:
    """bubblewrap's command line up to the interpreter: namespaces, read-only binds, tmpfs, env."""
    exe, prefix = base_python()
    args = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", WORKDIR, "--setenv", "LANG", "C.UTF-8",
            "--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin"):  # merged /usr: the top-level names are links into it
        target = Path("/") / link
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            args += ["--ro-bind", str(target), str(target)]
    if not prefix.startswith("/usr/") and prefix != "/usr":
        parents = list(reversed(Path(prefix).parents))[1:]  # e.g. /root, /root/.pyenv: made 0755, not bound
        for parent in parents:
            args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", prefix, prefix]
    if not exe.startswith(prefix + "/") and not exe.startswith("/usr/"):
        args += ["--ro-bind", exe, exe]
    size = ["--size", str(limits.tmp_mb * 1024 * 1024)] if _bwrap_has(bwrap, "--size") else []  # bwrap >= 0.7
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", *size, "--tmpfs", WORKDIR,
             "--perms", "1777", *size, "--tmpfs", "/tmp", "--chdir", WORKDIR, "--", exe]
    return args


@lru_cache(maxsize=4)
def _bwrap_has(bwrap: str, option: str) -> bool:
    """Whether this bwrap knows `option` (older releases lack --size; without it the tmpfs is
    bounded only by RLIMIT_FSIZE per file)."""
    try:
        done = subprocess.run([bwrap, "--help"], capture_output=True, timeout=10, env={})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return option in (done.stdout + done.stderr).decode(errors="replace")


def _bwrap_check() -> str | None:
    return _bwrap_check_at(_bwrap_path())


@lru_cache(maxsize=4)
def _bwrap_check_at(bwrap: str | None) -> str | None:
    """None when bubblewrap runs a trivial program here, else why not (one line)."""
    if bwrap is None:
        return "bwrap not found"
    try:
        done = subprocess.run(_bwrap_args(bwrap, SandboxLimits()) + ["-I", "-S", "-c", "print('sandbox-ok')"],
                              capture_output=True, timeout=30, env={}, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap self-test failed: {exc}"
    if done.returncode != 0 or done.stdout.strip() != b"sandbox-ok":
        why = done.stderr.decode(errors="replace").strip().splitlines()
        return f"bwrap self-test failed: {(why or ['exit ' + str(done.returncode)])[-1][:200]}"
    return None


_warned: set[str] = set()


def sandbox_kind() -> tuple[str, str | None]:
    """("bubblewrap", None); ("rlimits", why) when opted in with SYNTHFACTORY_SANDBOX=rlimits (logged
    once); ("none", why bubblewrap does not work) otherwise: the sandbox fails closed."""
    if os.environ.get(SANDBOX_ENV, "").strip().lower() == "rlimits":
        why = f"opted in with {SANDBOX_ENV}=rlimits"
        if why not in _warned:
            _warned.add(why)
            log.warning("python_tests sandbox: rlimits only (%s): generated code can read files and use the "
                        "network", why)
        return "rlimits", why
    broken = _bwrap_check()
    return ("bubblewrap", None) if broken is None else ("none", broken)


def sandbox_unavailable() -> str | None:
    """None when generated code can run isolated (or the user opted in to rlimits), else the one-line
    error naming the fix."""
    kind, why = sandbox_kind()
    if kind != "none":
        return None
    return (f"generated code will not run without the bubblewrap sandbox ({why}): install bubblewrap "
            f"(Debian/Ubuntu: apt-get install bubblewrap; `make system-deps`), or set {SANDBOX_ENV}=rlimits "
            f"to accept the weaker sandbox (no file or network isolation)")


def sandbox_in_force() -> str:
    """One line naming the sandbox that runs generated code (what `synthfactory doctor` prints)."""
    kind, why = sandbox_kind()
    if kind == "bubblewrap":
        return "bubblewrap (no network, read-only root, pid namespace)"
    if kind == "none":
        return (f"none: python_tests refuses to run generated code "
                f"({why}; install bubblewrap or set {SANDBOX_ENV}=rlimits)")
    line = f"rlimits only ({why}): no file or network isolation"
    if os.getuid() == 0 and not _drop_uid(base_python()[1], "rlimits"):
        line += "; runs as root with no process bound (the Python installation is private to root)"
    return line


def _drop_uid(prefix: str, sandbox: str) -> int:
    """The uid the prelude switches to when we are root: a fresh random one, so RLIMIT_NPROC binds
    and counts only this sandbox. 0 (stay) in the fallback when the installation is unreadable to
    others (e.g. under /root): dropping there would break the program's imports."""
    if os.getuid() != 0:
        return 0
    if sandbox == "rlimits" and not all(os.stat(p).st_mode & 0o001 for p in [Path(prefix), *Path(prefix).parents]):
        return 0
    return 1_000_000 + secrets.randbelow(1_000_000_000)


def _descendants(root: int) -> list[int]:
    """Pids under `root` by parent links in /proc (the fallback's tree; bubblewrap needs none)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(proc: subprocess.Popen, sandbox: str) -> None:
    """SIGKILL the whole tree: bubblewrap's group (its init's death ends the pid namespace), or in the
    fallback the group plus every descendant found in /proc (stopped first, so none forks on)."""
    running = proc.poll() is None
    if sandbox == "bubblewrap" and not running:
        return  # bwrap has ended, and with its init the pid namespace (its pid may be reused now)
    pids = _descendants(proc.pid) if sandbox != "bubblewrap" and running else []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGSTOP)
        except OSError:
            pass
    if pids:
        pids = _descendants(proc.pid) + pids
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    for pid in set(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _write_stdin(proc: subprocess.Popen, data: bytes) -> None:
    try:
        assert proc.stdin is not None
        proc.stdin.write(data)
        proc.stdin.close()
    except (BrokenPipeError, OSError, ValueError):
        pass


def _prepare(program: str, limits: SandboxLimits, control: tuple[int, int] = (-1, -1)):
    """(argv, cwd, env, the prelude's input up to the program's own stdin, kind, workdir) for one
    sandboxed program; `control`: the fds (in the sandbox) of its control pipes."""
    kind, why = sandbox_kind()
    if kind == "none":
        raise RuntimeError(f"no sandbox to run generated code in: {why}")
    exe, prefix = base_python()
    source = program.encode()
    uid = _drop_uid(prefix, kind)
    config = (f"{limits.cpu_s} {limits.memory_mb * 1024 * 1024} {limits.file_size_mb * 1024 * 1024} "
              f"{limits.open_files} {limits.max_processes} {uid} {len(source)} {control[0]} {control[1]}\n").encode()
    workdir = None
    if kind == "bubblewrap":
        bwrap = _bwrap_path()
        assert bwrap is not None
        argv, cwd, env = _bwrap_args(bwrap, limits) + ["-I", "-S", "-c", PRELUDE], None, {}
    else:
        workdir = tempfile.mkdtemp(prefix="sf-sandbox-")
        if uid:
            os.chown(workdir, uid, uid)
        argv, cwd = [exe, "-I", "-S", "-c", PRELUDE], workdir
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8"}
    return argv, cwd, env, config + source, kind, workdir


def folders(kind: str, workdir: str | None) -> list[str]:
    """Where a sandboxed program may write: its private tmpfs folders, or the fallback's temp dir."""
    return [WORKDIR, "/tmp"] if kind == "bubblewrap" else [workdir or ""]


def run_python(program: str, stdin: bytes = b"", limits: SandboxLimits | None = None) -> SandboxResult:
    """Run `program` (Python source) in the sandbox in force with `stdin` as its input."""
    limits = limits or SandboxLimits()
    argv, cwd, env, head, kind, workdir = _prepare(program, limits)
    started = time.monotonic()
    try:
        return _supervise(argv, cwd, env, head + stdin, limits, kind, started)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


class SandboxProcess:
    """A sandboxed program the verifier talks to while it runs: frames (one JSON line each, see
    `plain.dumps`) over two control pipes, `__sandbox_fds__` inside; its stdin is `stdin` (then
    closed), its stdout and stderr are drained into bounded tails under one output cap (stdout
    whole up to the cap when `keep_stdout`). Nothing the program writes is trusted: a frame is
    data, and a line longer than the output cap ends the program as `output_limit`."""

    def __init__(self, program: str, limits: SandboxLimits, stdin: bytes = b"", deadline: float | None = None,
                 keep_stdout: bool = False) -> None:
        self.limits = limits
        self.started = time.monotonic()
        self.deadline = deadline if deadline is not None else self.started + limits.timeout_s
        self.cap = limits.max_output_kb * 1024
        self.keep_stdout = keep_stdout
        to_box_r, to_box_w = os.pipe()
        from_box_r, from_box_w = os.pipe()
        self.workdir = None
        try:
            argv, cwd, env, head, self.kind, self.workdir = _prepare(program, limits, (to_box_r, from_box_w))
            self.folders = folders(self.kind, self.workdir)
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True, close_fds=True,
                                         pass_fds=(to_box_r, from_box_w))
        except BaseException:
            for fd in (to_box_r, to_box_w, from_box_r, from_box_w):
                os.close(fd)
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        os.close(to_box_r)
        os.close(from_box_w)
        self._to_box, self._from_box = to_box_w, from_box_r
        self._feeder = threading.Thread(target=_write_stdin, args=(self.proc, head + stdin), daemon=True)
        self._feeder.start()
        self._out = b""  # to the box, not yet written
        self._frames = b""  # from the box, not yet a whole line
        self.tails = {"stdout": b"", "stderr": b""}
        self.stdout = b""
        self.total = 0
        self.killed: SandboxStatus | None = None
        self.closed = False
        self._selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None and self.proc.stderr is not None  # started with both piped
        for name, fd in (("stdout", self.proc.stdout.fileno()), ("stderr", self.proc.stderr.fileno()),
                         ("frames", self._from_box)):
            os.set_blocking(fd, False)
            self._selector.register(fd, selectors.EVENT_READ, name)
        os.set_blocking(self._to_box, False)

    def send(self, frame: bytes) -> None:
        """Queue a frame (bytes ending in a newline) for the box; written as `recv` waits."""
        self._out += frame

    def recv(self) -> bytes | None:
        """The next whole line from the box's control pipe, writing what `send` queued meanwhile;
        None when the box ended (its pipe closed), timed out or passed the output cap (`killed`)."""
        while True:
            line, sep, rest = self._frames.partition(b"\n")
            if sep:
                self._frames = rest
                return line
            if self.killed or not self._selector.get_map() or "frames" not in \
                    {key.data for key in self._selector.get_map().values()}:
                return None
            now = time.monotonic()
            if now >= self.deadline:
                self.killed = "timeout"
                return None
            if self._out and self._to_box >= 0:
                try:
                    written = os.write(self._to_box, self._out[:65536])
                    self._out = self._out[written:]
                except BlockingIOError:
                    pass
                except OSError:  # the box closed its end: it has ended or will
                    self._out = b""
            for key, _ in self._selector.select(timeout=min(0.05 if self._out else 0.2, self.deadline - now)):
                self._read(key)
            if self.proc.poll() is not None and not self._out:
                self._drain_after_exit()

    def _read(self, key) -> None:
        try:
            chunk = os.read(key.fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self._selector.unregister(key.fd)
            return
        name = key.data
        if name == "frames":
            self._frames += chunk
            if len(self._frames) > self.cap and b"\n" not in self._frames:
                self.killed = "output_limit"
            return
        self.total += len(chunk)
        self.tails[name] = (self.tails[name] + chunk)[-TAIL_BYTES:]
        if name == "stdout" and self.keep_stdout:
            self.stdout += chunk
        if self.total > self.cap:
            self.killed = "output_limit"

    def _drain_after_exit(self) -> None:
        """The program has exited: read what its pipes still hold (briefly: in the fallback an escaped
        grandchild may hold them open), then stop watching them."""
        until = time.monotonic() + 0.5
        while self._selector.get_map() and time.monotonic() < until and not self.killed:
            ready = self._selector.select(timeout=0.05)
            for key, _ in ready:
                self._read(key)
        for key in list(self._selector.get_map().values()):
            self._selector.unregister(key.fd)

    def finish(self) -> SandboxResult:
        """End the program (its whole tree), and say how it ended."""
        if not self.closed:
            self.closed = True
            os.close(self._to_box)  # end of its input: a runner waiting for a frame exits now
            self._to_box = -1
            if not self.killed and self.proc.poll() is None:
                try:  # it was told everything; give it a moment to exit by itself (how it exits is the verdict)
                    self.proc.wait(timeout=max(0.0, min(self.deadline - time.monotonic(), 0.5)))
                except subprocess.TimeoutExpired:
                    pass
            _kill_tree(self.proc, self.kind)
            self.proc.wait()
            self._selector.close()
            os.close(self._from_box)
            for stream in (self.proc.stdout, self.proc.stderr):
                assert stream is not None
                stream.close()
            self._feeder.join(timeout=1)
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
        return _classify(self.proc.returncode, self.killed, self.tails, time.monotonic() - self.started, self.kind)


def _supervise(argv: list[str], cwd: str | None, env: dict[str, str], data: bytes, limits: SandboxLimits,
               kind: str, started: float) -> SandboxResult:
    """Start, feed, read in chunks under the caps, and end the sandbox; classify how it ended."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
    feeder = threading.Thread(target=_write_stdin, args=(proc, data), daemon=True)
    feeder.start()
    deadline = started + limits.timeout_s
    cap = limits.max_output_kb * 1024
    tails = {"stdout": b"", "stderr": b""}
    total = 0
    killed: SandboxStatus | None = None
    selector = selectors.DefaultSelector()
    for name in ("stdout", "stderr"):
        stream = getattr(proc, name)
        os.set_blocking(stream.fileno(), False)
        selector.register(stream, selectors.EVENT_READ, name)
    exited_at: float | None = None
    try:
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                killed = "timeout"
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > 0.5:
                break  # escaped grandchildren hold the pipes (fallback only): stop reading
            for key, _ in selector.select(timeout=min(0.1, deadline - now)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                total += len(chunk)
                tails[key.data] = (tails[key.data] + chunk)[-TAIL_BYTES:]
                if total > cap:
                    killed = "output_limit"
                    break
            if killed:
                break
        if killed is None:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed = "timeout"
    finally:
        _kill_tree(proc, kind)  # always: nothing outlives its verdict
        proc.wait()
        selector.close()
        for stream in (proc.stdout, proc.stderr):
            assert stream is not None
            stream.close()
        feeder.join(timeout=1)
    return _classify(proc.returncode, killed, tails, time.monotonic() - started, kind)


def _classify(code: int, killed: SandboxStatus | None, tails: dict[str, bytes], wall: float,
              kind: str) -> SandboxResult:
    out, err = (tails[n].decode("utf-8", errors="replace") for n in ("stdout", "stderr"))
    if killed:
        return SandboxResult(killed, None, "SIGKILL", out, err, wall, kind)
    signum = -code if code < 0 else (code - 128 if kind == "bubblewrap" and code > 128 else None)
    if signum is not None:
        name = _signal_name(signum)
        status: SandboxStatus = "timeout" if signum == signal.SIGXCPU else "crashed"
        return SandboxResult(status, code, name, out, err, wall, kind)
    if code != 0 and err.rstrip().endswith("MemoryError"):
        return SandboxResult("memory", code, None, out, err, wall, kind)
    return SandboxResult("ok" if code == 0 else "failed", code, None, out, err, wall, kind)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
