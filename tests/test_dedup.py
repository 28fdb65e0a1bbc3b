"""Near-dup screening in bulk: the compiled tokenizer equals the Python one, and the bulk screen
answers exactly what checking and adding one text at a time answers."""

from __future__ import annotations

import random

import numpy as np
import xxhash
from rensa import RMinHash, RMinHashLSH

from synthfactory.quality import tokens
from synthfactory.quality.dedup import CHUNK, SEED, NearDupIndex, Signatures, write_version_index
from synthfactory.quality.text import word_bytes

TRICKY = ["", "   ", "...!?", "Hello, World!", "ΣΑΣ ΟΔΟΣ", "İstanbul \u212a Kelvin", "a\x00b c\x00",
          "tabs\tand\nnew\r\nlines\x0b\x0cend", "control\x01chars\x1fstay\x7fin words", "数据 合成 的 文本",
          "emoji 🙂 in 🙂🙂 text", "x" * 17 + " " + "y" * 40 + " " + "z" * 16 + " " + "w" * 8 + " abc abcd",
          "UPPER lower MiXeD", "  leading and trailing  ", "naïve café résumé"]


def _corpus(n: int, seed: int = 7) -> list[str]:
    """Texts with planted duplicates: edits of an earlier text (near), re-cased and re-punctuated
    copies (exact), and edits of edits (chains), near and far apart, and the tricky texts."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)] + ["naïve", "ΣΟΦΙΑ", "数据", "İz"]
    docs: list[str] = []
    for _ in range(n):
        roll = rng.random()
        if docs and roll < 0.1:
            words = rng.choice(docs[-50:] if rng.random() < 0.5 else docs).split()
            words[rng.randrange(len(words))] = rng.choice(vocab)
            docs.append(" ".join(words))
        elif docs and roll < 0.14:
            docs.append(rng.choice(docs).upper().replace(" ", "  ") + "!")
        elif docs and roll < 0.2:  # an eighth of the words changed: chained, an edit of an edit drifts away
            words = docs[-rng.randint(1, min(20, len(docs)))].split() or ["empty"]
            for _ in range(max(1, len(words) // 8)):
                words[rng.randrange(len(words))] = rng.choice(vocab)
            docs.append(" ".join(words))
        elif roll < 0.21:
            docs.append(rng.choice(TRICKY))
        else:
            docs.append(" ".join(rng.choices(vocab, k=rng.randint(20, 60))) + ".")
    return docs


def _one_at_a_time(published: list[list[str]], batches: list[tuple[list[str], bool]], threshold=0.7,
                   num_perm=128, bands=16):
    """The reference: one RMinHash object per text, each checked against every published version and
    the rows kept so far (exact key first, then LSH), then added when new and `keep`."""
    def signature(text):
        words = word_bytes(text)
        return xxhash.xxh3_64_intdigest(b" ".join(words)), RMinHash.from_token_sets([words or [b""]], num_perm, SEED)[0]

    indexes = []
    for v, texts in enumerate(published, start=1):
        lsh, exact, ids = RMinHashLSH(threshold, num_perm, bands), {}, []
        for position, text in enumerate(texts):
            key, mh = signature(text)
            lsh.insert(position, mh)
            exact.setdefault(key, position)
            ids.append(f"v{v}-{position}")
        indexes.append((lsh, exact, ids))
    live = (RMinHashLSH(threshold, num_perm, bands), {}, [])
    answers = []
    for b, (texts, keep) in enumerate(batches):
        for i, text in enumerate(texts):
            key, mh = signature(text)
            hit = None
            for lsh, exact, ids in [*indexes, live]:
                if key in exact:
                    hit = ("exact_duplicate", ids[exact[key]], 1)
                elif candidates := lsh.query(mh):
                    hit = ("near_duplicate", ids[min(candidates)], 1)
                if hit:
                    break
            answers.append(hit)
            if hit is None and keep:
                live[1].setdefault(key, len(live[2]))
                live[0].insert(len(live[2]), mh)
                live[2].append(f"b{b}-{i}")
    return answers


def test_compiled_tokenizer_is_used_and_equals_the_python_one():
    texts = TRICKY + _corpus(3000)
    assert tokens.compiled(), "the compiled tokenizer is off: numba missing, or it disagrees with rensa's hash"
    fast = tokens.token_hashes(texts)
    ref = tokens.token_hashes_python(texts)
    assert np.array_equal(fast.hashes, ref.hashes) and np.array_equal(fast.offsets, ref.offsets)
    assert fast.normalised == ref.normalised and fast.bounds == ref.bounds and fast.keys == ref.keys
    assert [fast.words(i) for i in range(len(texts))] == [word_bytes(t) or [b""] for t in texts]

    sig = Signatures.of(texts, 128)  # chunked matrices == one RMinHash object per text
    rows = [row for _, matrix in sig.chunks for row in matrix.to_rows()]
    objects = RMinHash.from_token_sets([word_bytes(t) or [b""] for t in texts], 128, SEED)
    assert len(sig.chunks) == -(-len(texts) // CHUNK) and rows == [m.digest() for m in objects]


def test_bulk_screen_answers_as_one_text_at_a_time(tmp_path):
    docs = _corpus(6000)
    published, rest = [docs[:800], docs[800:1500]], docs[1500:]
    batches = [(rest[:2500], True), (rest[2500:2501], True), (rest[:300], False),  # a check that adds nothing
               (rest[2501:], True), (TRICKY, True)]
    expected = _one_at_a_time(published, batches)

    for v, texts in enumerate(published, start=1):
        write_version_index(tmp_path, v, texts, [f"v{v}-{i}" for i in range(len(texts))], [1] * len(texts))
    index = NearDupIndex.load(tmp_path)
    got = []
    for b, (texts, keep) in enumerate(batches):
        got += index.screen(texts, [f"b{b}-{i}" for i in range(len(texts))], [1] * len(texts), keep=keep)

    kinds = [h[0] for h in got if h]
    assert kinds.count("exact_duplicate") > 100 and kinds.count("near_duplicate") > 300  # the planted ones
    assert any(h and h[1].startswith("v") for h in got) and any(h and h[1].startswith("b") for h in got)
    assert got == expected
