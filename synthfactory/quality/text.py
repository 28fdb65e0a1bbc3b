"""Cheap per-text signals: normalisation, repetition, refusals, language, distinct-n, compression."""

from __future__ import annotations

import re
import string
import threading
import zlib
from collections import Counter
from typing import Any

from synthfactory.cache import cache_root
from synthfactory.storage import Location

_PUNCT = str.maketrans({c: " " for c in string.punctuation + "“”‘’—–…"})
REFUSAL_PATTERNS = re.compile(
    r"\b(as an ai( language model)?|i am an ai|i'm an ai|i cannot (help|assist|provide)|i can't (help|assist)"
    r"|i'm sorry, but i|i am sorry, but i|i do not have (personal|the ability)|as a language model"
    r"|i (cannot|can't|can not|am unable to|am not able to|'m unable to|'m not able to|won't) "
    r"(help|assist|provide|answer|explain|comply|do that)|unable to (help|assist))\b",
    re.IGNORECASE,
)


_ASCII_PUNCT = bytes.maketrans(string.punctuation.encode(), b" " * len(string.punctuation))


def word_bytes(text: str) -> list[bytes]:
    """Lower-cased UTF-8 words without ASCII punctuation: the dedup tokens (bytes are ~30% cheaper)."""
    return text.lower().encode("utf-8").translate(_ASCII_PUNCT).split()


def words(text: str) -> list[str]:
    """Lower-cased words with punctuation removed: the unit of every n-gram here."""
    return text.lower().translate(_PUNCT).split()


def normalised(text: str) -> str:
    return " ".join(words(text))


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def repeated_ngram_ratio(tokens: list[str], n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier one (0: none, → 1: a loop)."""
    grams = ngrams(tokens, n)
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def duplicate_line_ratio(text: str) -> float:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return 0.0
    return 1.0 - len(set(lines)) / len(lines)


def is_refusal(text: str) -> bool:
    return REFUSAL_PATTERNS.search(text) is not None


_LANGID_LOAD = threading.Lock()


def language(text: str) -> str:
    """ISO 639-1 code from langid's bundled model (offline). The model is loaded once per process:
    langid's own `classify` loads it whenever its global is unset, so batches screened at once in
    worker threads each decompressed the model (seconds of CPU each, taken from the engines)."""
    from langid import langid

    if langid.identifier is None:
        with _LANGID_LOAD:
            if langid.identifier is None:
                langid.identifier = _langid_identifier()
    return langid.classify(text)[0]


def _langid_identifier() -> Any:
    """langid's bundled model as its `LanguageIdentifier`. Decoding it (base64, bz2, unpickling
    2.3M transitions) costs ~1.2 s of CPU on a quiet core, in every process that screens; the
    decoded arrays are kept in the user's cache (`langid/{key}.npz`, plain arrays, no pickle) and
    read back in ~0.013 s. A cache file that cannot be read is decoded again and rewritten."""
    import array
    import hashlib
    import io
    import zipfile

    import numpy as np
    from langid import langid

    key = hashlib.sha256(langid.model if isinstance(langid.model, bytes) else langid.model.encode()).hexdigest()[:16]
    path = cache_root("langid", f"{key}.npz")
    try:
        with np.load(path, allow_pickle=False) as kept:
            classes = [str(c) for c in kept["classes"]]
            nb_pc = kept["nb_pc"]
            nb_ptc = kept["nb_ptc"]
            nextmove = array.array("H", kept["nextmove"].tobytes())
            keys, offsets, values = kept["out_keys"].tolist(), kept["out_offsets"].tolist(), kept["out_values"].tolist()
        output = {k: tuple(values[offsets[i]:offsets[i + 1]]) for i, k in enumerate(keys)}
        return langid.LanguageIdentifier(nb_ptc, nb_pc, nb_ptc.shape[0], classes, nextmove, output)
    except (OSError, KeyError, ValueError, IndexError, EOFError, zipfile.BadZipFile):  # absent or torn
        pass
    identifier = langid.LanguageIdentifier.from_modelstring(langid.model)
    keys = sorted(identifier.tk_output)
    offsets = [0]
    values = []
    for k in keys:
        values.extend(identifier.tk_output[k])
        offsets.append(len(values))
    data = io.BytesIO()
    np.savez(data, classes=np.array(identifier.nb_classes), nb_pc=identifier.nb_pc, nb_ptc=identifier.nb_ptc,
             nextmove=np.frombuffer(identifier.tk_nextmove, dtype=np.uint16),
             out_keys=np.array(keys, dtype=np.int64), out_offsets=np.array(offsets, dtype=np.int64),
             out_values=np.array(values, dtype=np.int64))
    try:
        Location.of(path).write_bytes(data.getvalue())  # whole or nothing, no partial file left
    except OSError:  # a read-only home: decode again next time
        pass
    return identifier


def compression_ratio(texts: list[str]) -> float:
    """zlib-compressed size / raw size: lower means more repetitive text."""
    raw = "\n".join(texts).encode("utf-8")
    return len(zlib.compress(raw, 9)) / len(raw) if raw else 1.0


def distinct_n(texts: list[str], n: int) -> float:
    """Unique word n-grams / all word n-grams over the texts (Li et al., 2016)."""
    counts: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        counts.update(ngrams(words(text), n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0
