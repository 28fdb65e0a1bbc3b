"""Cheap per-text signals: normalisation, repetition, refusals, language, distinct-n, compression."""

from __future__ import annotations

import re
import string
import threading
import zlib
from collections import Counter

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
                langid.load_model()
    return langid.classify(text)[0]


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
