"""Plain data across the sandbox boundary: the only values that cross between a solution's process
and the process that runs its tests (and the verifier, which reads both).

Plain data is None, bool, int, float, complex, str, bytes, and lists, tuples, dicts, sets and
frozensets of plain data: exact types, never subclasses, so nothing crossing can carry code (an
object equal to everything, a str whose `__eq__` lies). `encode` turns a value into JSON-able
nested lists or raises `NotPlain` naming the first type that is not plain; `decode` rebuilds the
value from JSON and raises `ValueError` on anything it did not make (the other side is hostile).

Standard library only, and self-contained: this file's source is also run inside the sandbox (by
`python -I -S`, where the package cannot be imported), prepended to the runners'.
"""

import json
import os

MAX_DEPTH = 64
BIG = 2 ** 64  # ints at least this large cross as hex
MAX_HEX_DIGITS = 1_000_000


class NotPlain(Exception):
    """A value that may not cross: `type_name` is the first non-plain type found."""

    def __init__(self, type_name):
        super().__init__(type_name)
        self.type_name = type_name


def encode(value, depth=0):
    """JSON-able form: str, int, bool and None as themselves; everything else a list tagged by its
    first item (floats by `float.hex`, so nan, inf and -0.0 cross exactly)."""
    kind = type(value)
    if kind is int and not -BIG < value < BIG:
        return ["i", int.__format__(value, "x")]  # hex: no digit limit (a decimal past 4,300 digits is refused)
    if value is None or kind is bool or kind is int or kind is str:
        return value
    if depth >= MAX_DEPTH:
        raise NotPlain(f"nesting deeper than {MAX_DEPTH}")
    if kind is float:
        return ["f", float.hex(value)]
    if kind is complex:
        return ["c", float.hex(value.real), float.hex(value.imag)]
    if kind is bytes:
        return ["b", bytes.hex(value)]
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        tag = {list: "L", tuple: "T", set: "S", frozenset: "F"}[kind]
        return [tag] + [encode(item, depth + 1) for item in list(value)]
    if kind is dict:
        out = ["D"]
        for key, item in list(dict.items(value)):
            out.append(encode(key, depth + 1))
            out.append(encode(item, depth + 1))
        return out
    name = type.__dict__["__name__"].__get__(kind)  # the class's own name, not an attribute it fakes
    raise NotPlain(name if type(name) is str else "?")


def decode(data, depth=0):
    """The value `encode` made `data` from; ValueError for anything else."""
    kind = type(data)
    if data is None or kind is bool or kind is int or kind is str:
        return data
    if kind is not list or not data or type(data[0]) is not str:
        raise ValueError("not plain data")
    if depth >= MAX_DEPTH:
        raise ValueError("nesting too deep")
    tag, rest = data[0], data[1:]
    try:
        if tag == "i" and len(rest) == 1 and type(rest[0]) is str and len(rest[0]) <= MAX_HEX_DIGITS:
            return int(rest[0], 16)
        if tag == "f" and len(rest) == 1 and type(rest[0]) is str:
            return float.fromhex(rest[0])
        if tag == "c" and len(rest) == 2 and all(type(x) is str for x in rest):
            return complex(float.fromhex(rest[0]), float.fromhex(rest[1]))
        if tag == "b" and len(rest) == 1 and type(rest[0]) is str:
            return bytes.fromhex(rest[0])
        items = [decode(item, depth + 1) for item in rest]
        if tag == "L":
            return items
        if tag == "T":
            return tuple(items)
        if tag == "S":
            return set(items)
        if tag == "F":
            return frozenset(items)
        if tag == "D" and len(items) % 2 == 0:
            return dict(zip(items[0::2], items[1::2], strict=True))
    except (TypeError, OverflowError) as exc:  # an unhashable key or member, a bad number
        raise ValueError(str(exc)[:100]) from None
    raise ValueError("not plain data")


def dumps(frame):
    """One frame as one line of JSON (strings escape newlines), ending in a newline."""
    return (json.dumps(frame, separators=(",", ":"), allow_nan=False) + "\n").encode()


def _no_constant(name):
    raise ValueError("NaN and Infinity are not JSON")


def loads(line):
    """A frame (a dict) from one line; ValueError for anything else."""
    try:
        frame = json.loads(line, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ValueError("not a frame") from None
    if type(frame) is not dict:
        raise ValueError("not a frame")
    return frame


def channel(read_fd, write_fd):
    """(receive, send) over a sandboxed program's control pipes: `receive()` the next frame, or None
    at the end of its input; `send(frame)` writes one whole. os.read and os.write are bound now,
    before any solution code runs, so replacing them later changes nothing here."""
    read, write, buffer = os.read, os.write, [b""]

    def receive():
        while b"\n" not in buffer[0]:
            chunk = read(read_fd, 65536)
            if not chunk:
                return None
            buffer[0] += chunk
        line, _, buffer[0] = buffer[0].partition(b"\n")
        return loads(line)

    def send(frame):
        data = dumps(frame)
        while data:
            data = data[write(write_fd, data):]

    return receive, send
