"""The program that runs a seed's tests inside the sandbox, in a process of its own: the solution
runs in another one and is reached only through the verifier (ours, trusted; never imported for
its effect). `plain.py`'s source is prepended to it.

It reads one frame on its control pipe: {tests, names}, where `names` are the solution's top-level
names (["call"] for a callable, ["value", plain] for plain data). Each callable becomes a proxy in
the tests' namespace: calling it sends {kind: "call", name, args, kwargs} (plain data only) and
waits for the answer the verifier relays from the solution's process: a return value (decoded:
exact plain types, never an object of the solution's), an exception raised again here under its
type's name with its message, or the end of the solution (not plain data, it died, or it attempted
a forbidden act), which ends the tests at once whatever they catch.

The tests run as the old contract says: bare `assert`s at the top level, then each `def test_*()`
they define, in order. The verdict, the last frame it writes, is {kind: "verdict", status: ok |
failed | bad_tests | no_tests | unexpressible | solution_ended, ...}.
"""

import ast
import builtins

try:  # for readers and linters: in the sandbox plain.py's source is prepended (the package is not there)
    from synthfactory.verify.plain import NotPlain, channel, decode, encode
except ImportError:
    pass


class SolutionEnded(BaseException):
    """The solution's process cannot answer (not plain data, died, a forbidden act): no test may
    catch this (it is not an Exception)."""

    def __init__(self, answer):
        super().__init__(answer.get("kind", "?"))
        self.answer = answer


class Unexpressible(BaseException):
    """The tests passed something to the solution that is not plain data."""

    def __init__(self, type_name):
        super().__init__(type_name)
        self.type_name = type_name


def _exception_class(name):
    """The builtin exception of that name, else a new Exception subclass named so."""
    if type(name) is not str or not name.isidentifier():
        name = "Exception"
    found = getattr(builtins, name, None)
    # exceptions with a meaning to the interpreter (StopIteration ends a map() early, so `all(map(f, xs))`
    # would pass) cross as plain Exceptions of the same name
    if isinstance(found, type) and issubclass(found, Exception) and not issubclass(found, (StopIteration,
                                                                                          StopAsyncIteration)):
        return found
    return type(name, (Exception,), {})


def main():
    receive, send = channel(*globals()["__sandbox_fds__"])  # the fds: set by the sandbox's prelude

    ended = []  # set once the solution can no longer answer: the verdict then, whatever the tests caught

    def proxy(name):
        def call(*args, **kwargs):
            try:
                request = {"kind": "call", "name": name, "args": encode(list(args)),
                           "kwargs": encode(dict(kwargs))}
            except NotPlain as exc:
                ended.append({"kind": "unexpressible", "type": exc.type_name})
                raise Unexpressible(exc.type_name) from None
            if ended:
                raise SolutionEnded(ended[0])
            send(request)
            answer = receive()
            if answer is None or answer.get("kind") not in ("return", "raise"):
                ended.append(answer or {"kind": "ended"})
                raise SolutionEnded(ended[0])
            if answer["kind"] == "return":
                try:
                    return decode(answer.get("value"))
                except ValueError:
                    ended.append({"kind": "not_plain", "type": "?"})
                    raise SolutionEnded(ended[0]) from None
            message = answer.get("message")
            raise _exception_class(answer.get("error"))(message if type(message) is str else "")

        call.__name__ = call.__qualname__ = name
        return call

    payload = receive()
    tests = payload["tests"]
    try:
        code = compile(tests, "<tests>", "exec")
        asserts = sum(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(tests)))
    except (SyntaxError, ValueError) as exc:
        send({"kind": "verdict", "status": "bad_tests", "line": getattr(exc, "lineno", 0) or 0})
        return
    namespace = {"__name__": "tests", "__builtins__": builtins}
    for name, spec in payload["names"].items():
        if type(name) is not str or not name.isidentifier() or name.startswith("_") or name in builtins.__dict__:
            continue  # a solution's `abs` or `sorted` must not change what the tests' own calls mean
        if spec[0] == "call":
            namespace[name] = proxy(name)
        else:
            namespace[name] = decode(spec[1])
    found = []
    try:
        exec(code, namespace)
        found = [value for name, value in list(namespace.items())
                 if name.startswith("test_") and callable(value)
                 and getattr(getattr(value, "__code__", None), "co_filename", "") == "<tests>"]
        for test in found:
            test()
    except (SolutionEnded, Unexpressible):
        pass  # settled below from `ended`
    except BaseException as exc:  # every failure of the tests is the verdict
        if not ended:
            line, tb = 0, exc.__traceback__
            while tb is not None:
                if tb.tb_frame.f_code.co_filename == "<tests>":
                    line = tb.tb_lineno
                tb = tb.tb_next
            send({"kind": "verdict", "status": "failed", "error": type(exc).__name__, "line": line})
            return
    if ended:  # even when the tests caught it (a bare except): the solution could not answer
        if ended[0].get("kind") == "unexpressible":
            send({"kind": "verdict", "status": "unexpressible", "type": str(ended[0].get("type"))[:100]})
        else:
            send({"kind": "verdict", "status": "solution_ended", "answer": ended[0]})
        return
    if not asserts and not found:
        send({"kind": "verdict", "status": "no_tests"})
        return
    send({"kind": "verdict", "status": "ok", "tests": len(found), "asserts": asserts})


main()
