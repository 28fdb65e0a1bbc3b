"""The program that runs a generated solution inside the sandbox (ours, trusted up to the moment the
solution starts; never imported for its effect). `plain.py`'s source is prepended to it.

It reads one frame from the verifier on its control pipe: {mode, solution, allow, max_threads,
folders, stdlib}. Before the solution runs it installs the guard: a Python audit hook (which
cannot be removed) that writes each forbidden act the program attempts to the control pipe at
once and then ends the process (exit 86) before the act happens, unless the recipe allowed that
event. Forbidden: opening files or listing folders outside the program's own folders (reading the
Python standard library is allowed), any socket, subprocesses, os.system, exec, spawn and fork,
signals to processes, reading or changing the environment, ctypes, more threads than allowed,
and tampering with the interpreter (gc's object walks, new audit hooks, replacing code objects,
resource limits). An act hidden from the hook by swapping the control pipe's file descriptor ends
the process with exit 87.

mode "calls": the solution runs as a module; its top-level names are reported ({kind: "loaded",
names}: callables, and plain-data values), then each {kind: "call", name, args, kwargs} frame is
answered with {kind: "return", value}, {kind: "raise", error, message, line} or
{kind: "not_plain", type}. Only plain data crosses (plain.py), so no object the solution makes
reaches the tests' process, and nothing of that process (its frames, its verdict) is here.

mode "io": the solution runs as `__main__` with its stdin and stdout the verifier's own pipes
(the case's input, the output compared by the verifier); {kind: "done", status, error, line}
follows when it returns or raises.
"""

import builtins
import os
import sys

try:  # for readers and linters: in the sandbox plain.py's source is prepended (the package is not there)
    from synthfactory.verify.plain import NotPlain, channel, decode, encode
except ImportError:
    pass

UNSAFE_EXIT = 86  # a forbidden act was attempted (its event frame written first)
TAMPERED_EXIT = 87  # the control pipe was swapped: the event could not be written

# ctypes and the interpreter's test hooks; and modules the guard already holds (wrapped), whose import
# event fires only when the solution drops them from sys.modules to load an unwrapped copy
FORBIDDEN_IMPORTS = frozenset({"ctypes", "_ctypes", "_testcapi", "_testinternalcapi", "_xxsubinterpreters",
                               "_xxinterpchannels", "_posixsubprocess", "_thread", "posix"})
PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
                            "os.forkpty", "os.startfile", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill",
                            "os.putenv", "os.unsetenv", "resource.prlimit",
                            "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.addaudithook",
                            "os.symlink", "os.link", "webbrowser.open", "urllib.Request",
                            "synthfactory.environ", "synthfactory.thread"})
PATH_EVENTS = frozenset({"os.listdir", "os.scandir", "os.remove", "os.rmdir", "os.mkdir", "os.rename",
                         "os.truncate", "os.chmod", "os.chown", "os.utime", "os.chdir", "glob.glob", "os.chflags",
                         "os.lchflags", "shutil.rmtree", "shutil.move", "shutil.copyfile", "shutil.copymode",
                         "shutil.copystat", "shutil.chown", "os.fwalk"})
NETWORK_PREFIXES = ("socket.", "http.client.", "ftplib.", "smtplib.", "poplib.", "imaplib.", "nntplib.",
                    "telnetlib.", "ctypes.")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
READABLE_DEVICES = frozenset({"/dev/null", "/dev/urandom", "/dev/random", "/dev/zero"})
WRITABLE_DEVICES = frozenset({"/dev/null"})
READABLE_FOLDERS = ("/usr/share/zoneinfo/",)  # zoneinfo's data; the standard library is added at run time
# what the standard library itself reads on behalf of honest code (tempfile, shutil.which, gettext,
# time zones); the sandbox's environment holds nothing else but PATH, HOME and LANG
BENIGN_ENVIRON = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LC_CTYPE", "TMPDIR",
                            "TEMP", "TMP", "TZ", "COLUMNS", "LINES", "TERM", "PYTHONTZPATH"})
SHORT_NAMES = {"synthfactory.environ": "environ", "synthfactory.thread": "thread"}


def _install_guard(channel, allow, max_threads, folders, stdlib):
    """The audit hook and the wrappers that make environment reads and thread starts audited
    events. Everything it calls is bound here (builtins and C functions), so a solution that
    replaces module attributes or builtins does not change what the hook does."""
    write, fstat, exit_now, getcwd = os.write, os.fstat, os._exit, os.getcwd
    _type, _str, _bytes, _int, _len, _tuple = type, str, bytes, int, len, tuple
    typename = type.__dict__["__name__"].__get__  # a class's own name (no metaclass property runs)
    escape = (__import__("json").encoder.c_encode_basestring_ascii
              or __import__("json").encoder.py_encode_basestring_ascii)
    identity = (fstat(channel).st_dev, fstat(channel).st_ino)
    allow_prefixes = _tuple(a[:-1] for a in allow if a.endswith("*"))
    allow = frozenset(allow)
    folders = _tuple(f.rstrip("/") + "/" for f in folders if f)
    stdlib = _tuple(p.rstrip("/") + "/" for p in stdlib if p)
    readable = stdlib + READABLE_FOLDERS
    audit = sys.audit
    import _posixsubprocess
    import _thread
    import posix
    from collections.abc import MutableMapping

    def absolute(path):
        """`path` made absolute and normalised with str methods only (no os.path, which the
        solution could replace); None for anything that is not a plain str/bytes path."""
        if _type(path) is _bytes:
            path = path.decode("utf-8", "replace")
        elif _type(path) is not _str:
            return None  # never touched: its __str__ or __fspath__ would be the solution's code, run in here
        if not path.startswith("/"):
            path = getcwd() + "/" + path
        parts = []
        for part in path.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        return "/" + "/".join(parts)

    def inside(path, places):
        full = absolute(path)
        if full is None:
            return False
        full_dir = full + "/"
        for place in places:
            if full_dir.startswith(place):
                return True
        return False

    def detail(args):
        for arg in args:
            if _type(arg) in (_str, _bytes):
                return absolute(arg) if _type(arg) is _str and "/" in arg else (
                    arg if _type(arg) is _str else arg.decode("utf-8", "replace"))
            if _type(arg) is _int:
                return _str(arg)
        return ""

    def refuse(event, what):
        name = SHORT_NAMES.get(event, event)
        if name in allow or event in allow or (allow_prefixes and name.startswith(allow_prefixes)):
            return
        try:
            if (fstat(channel).st_dev, fstat(channel).st_ino) != identity:
                exit_now(TAMPERED_EXIT)
            frame = '{"kind":"event","event":' + escape(name) + ',"detail":' + escape(_str(what)[:200]) + "}\n"
            write(channel, frame.encode())
        finally:
            exit_now(UNSAFE_EXIT)

    def hook(event, args):
        try:
            check(event, args)
        except BaseException:  # nothing the solution made may make the guard let an act through
            exit_now(UNSAFE_EXIT)

    def check(event, args):
        if _type(event) is not _str or _type(args) is not _tuple:
            refuse("sys.audit", "")
        if event == "open":
            path, mode, flags = (args + (None, None, None))[:3]
            if _type(path) is _int:
                if path > 2:
                    refuse("open", "fd " + _str(path))
                return
            writes = (_type(mode) is _str and any(c in mode for c in "wax+")) or \
                     (mode is None and _type(flags) is _int and flags & WRITE_FLAGS)
            full = absolute(path)
            if inside(path, folders) or full in WRITABLE_DEVICES:
                return
            # os.open (mode None) outside the folders is refused even to read: a directory fd opened
            # that way would let a later open(name, dir_fd=fd) escape the path check
            if mode is not None and not writes and (inside(path, readable) or full in READABLE_DEVICES):
                return
            refuse("open", full if full is not None else "<" + _str(typename(_type(path))) + ">")
        elif event == "import":
            if args and _type(args[0]) is _str and args[0].split(".")[0] in FORBIDDEN_IMPORTS:
                refuse("import " + args[0].split(".")[0], args[0])
        elif event in PATH_EVENTS:
            paths = [a for a in args[:2] if _type(a) in (_str, _bytes)] or ([getcwd()] if not args or args[0] is None
                                                                            else [])
            for path in paths:
                if not inside(path, folders) and not (event in ("os.listdir", "os.scandir") and inside(path, stdlib)):
                    refuse(event, absolute(path))
            if not paths:
                refuse(event, detail(args))
        elif event in PROCESS_EVENTS or event.startswith(NETWORK_PREFIXES):
            refuse(event, detail(args))
        elif event == "object.__setattr__" and _len(args) > 1 and _type(args[1]) is _str and args[1] == "__code__":
            refuse("object.__setattr__", "__code__")

    # The environment: os.environ reads raise an audited event (the sandbox's own is PATH, HOME, LANG).
    data, data_b = dict(os.environ), dict(os.environb)

    def environ_class(store):
        class AuditedEnviron(MutableMapping):
            def __getitem__(self, key):
                if not (_type(key) is _str and key in BENIGN_ENVIRON) and \
                        not (_type(key) is _bytes and key.decode("latin-1") in BENIGN_ENVIRON):
                    audit("synthfactory.environ", key if _type(key) in (_str, _bytes) else "")
                return store[key]

            def __setitem__(self, key, value):
                audit("synthfactory.environ", key if _type(key) in (_str, _bytes) else "")
                store[key] = value

            def __delitem__(self, key):
                audit("synthfactory.environ", key if _type(key) in (_str, _bytes) else "")
                del store[key]

            def __iter__(self):
                audit("synthfactory.environ", "*")
                return iter(dict(store))

            def __len__(self):
                audit("synthfactory.environ", "*")
                return _len(store)

            def __repr__(self):
                audit("synthfactory.environ", "*")
                return repr(dict(store))

            def copy(self):
                audit("synthfactory.environ", "*")
                return dict(store)

        return AuditedEnviron()

    os.environ, os.environb = environ_class(data), environ_class(data_b)
    posix.environ.clear()

    # Threads: each start counted; one past the limit is an audited event.
    start, started = _thread.start_new_thread, [0]

    def start_new_thread(function, args, kwargs=None):
        started[0] += 1
        if started[0] > max_threads:
            audit("synthfactory.thread", started[0])
        return start(function, args, kwargs) if kwargs is not None else start(function, args)

    _thread.start_new_thread = start_new_thread

    # Processes: subprocess audits Popen; the call under it is audited here too, and unless the
    # recipe allows subprocesses the real one is not kept anywhere the solution could fish it out of.
    if "subprocess.Popen" in allow or "subprocess.Popen".startswith(allow_prefixes or ("\0",)):
        _posixsubprocess.fork_exec = _audited(_posixsubprocess.fork_exec, audit)
    else:
        _posixsubprocess.fork_exec = _refused
    _thread.start_new = start_new_thread
    if "threading" in sys.modules:
        sys.modules["threading"]._start_new_thread = start_new_thread
    sys.addaudithook(hook)  # last: nothing above is the solution's


def _audited(function, audit):
    def audited_fork_exec(*args):
        audit("subprocess.Popen", "fork_exec")
        return function(*args)
    return audited_fork_exec


def _refused(*args):
    sys.audit("subprocess.Popen", "fork_exec")
    raise PermissionError("no subprocesses in the sandbox")


def _line(exc, filename):
    """The innermost line of `filename` the exception passed through (0 if none)."""
    line, tb = 0, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        line = exc.lineno or 0
    return line


def _error(exc):
    """An exception as plain data: its type's own name (not one it fakes) and message."""
    name = type.__dict__["__name__"].__get__(type(exc))
    try:
        message = str(exc)
    except BaseException:  # a message that raises is no message
        message = ""
    return {"error": name if type(name) is str else "Exception", "message": message[:500] if type(message) is str
            else "", "line": _line(exc, "<solution>")}


def main():
    read_fd, channel_fd = globals()["__sandbox_fds__"]  # set by the sandbox's prelude
    exit_now = os._exit
    sys.dont_write_bytecode = True
    receive, send = channel(read_fd, channel_fd)

    payload = receive()
    mode = payload["mode"]
    try:
        code = compile(payload["solution"], "<solution>", "exec")
    except (SyntaxError, ValueError) as exc:
        send({"kind": "loaded", "status": "syntax_error", "line": getattr(exc, "lineno", 0) or 0})
        exit_now(0)
    namespace = {"__name__": "__main__" if mode == "io" else "solution", "__builtins__": builtins}
    _install_guard(channel_fd, payload.get("allow") or [], int(payload.get("max_threads", 4)),
                   payload.get("folders") or [], payload.get("stdlib") or [])
    if mode == "io":
        status = {"kind": "done", "status": "ok"}
        try:
            exec(code, namespace)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                status = {"kind": "done", "status": "exit", "code": exc.code if type(exc.code) is int else 1}
        except BaseException as exc:  # every failure of the program is its verdict
            status = {"kind": "done", "status": "memory" if isinstance(exc, MemoryError) else "failed", **_error(exc)}
        try:
            sys.stdout.flush()
        except BaseException:  # the program may have broken stdout
            pass
        send(status)
        exit_now(0)
    try:
        exec(code, namespace)
    except BaseException as exc:  # SystemExit, KeyboardInterrupt too
        send({"kind": "loaded", "status": "memory" if isinstance(exc, MemoryError) else "failed", **_error(exc)})
        exit_now(0)
    names = {}
    for name, value in list(namespace.items()):
        if type(name) is not str or name.startswith("__"):
            continue
        if callable(value):
            names[name] = ["call"]
        else:
            try:
                names[name] = ["value", encode(value)]
            except (NotPlain, RecursionError):  # modules, objects: not offered
                pass
    send({"kind": "loaded", "status": "ok", "names": names})
    while True:
        request = receive()
        if request is None:
            exit_now(0)
        try:
            function = namespace[request["name"]]
            args = decode(request["args"])
            kwargs = decode(request["kwargs"])
        except (KeyError, ValueError, TypeError):
            send({"kind": "raise", "error": "NameError", "message": "no such function", "line": 0})
            continue
        try:
            value = function(*args, **kwargs)
        except BaseException as exc:  # crosses to the tests as its name and message
            send({"kind": "raise", **_error(exc)})
            continue
        try:
            send({"kind": "return", "value": encode(value)})
        except NotPlain as exc:
            send({"kind": "not_plain", "type": exc.type_name[:100]})
        except RecursionError:
            send({"kind": "not_plain", "type": "nesting too deep"})


main()
