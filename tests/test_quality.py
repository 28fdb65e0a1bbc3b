"""Quality guards on real data: dedup, decontamination, heuristics, diversity gate, provenance."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from synthfactory.inputs.seeds import load_seeds
from synthfactory.quality.dedup import write_version_index
from synthfactory.quality.guards import QualityGuards
from synthfactory.quality.validation import SuiteGate
from synthfactory.quality.versioning import dedup_across_run
from synthfactory.recipe import load_recipe
from synthfactory.run.plan import plan_run
from synthfactory.run.stages import BatchState, measure_batch, settle_validation
from synthfactory.store import DatasetStore
from tests.conftest import make_recipe

VARIED = [
    "Tides are caused by the gravitational pull of the moon on the oceans of the earth.",
    "A binary search halves a sorted list at every step until it finds the value it seeks.",
    "Bees tell each other where flowers are by dancing in figure eights inside the hive.",
    "Bread rises because yeast eats sugar and releases carbon dioxide gas into the dough.",
    "Compound interest earns interest on earlier interest, so savings grow faster over time.",
    "Solar panels turn sunlight into electricity with layers of silicon that free electrons.",
]


def _row(text: str, i: int = 0, prompt: str = "Explain something in two sentences.", **extra) -> dict:
    return {"id": f"r{i}-{abs(hash(text)) % 10**8}", "text": text, "prompt": prompt, "source": "synthetic",
            "generation_depth": 1, "seed_id": "s", "run_id": "run", "batch_id": "b", "version": 1,
            "batch_index": 0, "created_at": datetime.now(timezone.utc), "recipe_hash": "h", "score": 0.9,
            "prompt_tokens": 1, "completion_tokens": 1, "judge_prompt_tokens": 0, "judge_completion_tokens": 0,
            "latency_s": 0.0, "judge_latency_s": 0.0, **extra}


def _guards(tmp_path, **overrides) -> QualityGuards:
    loaded = load_recipe(make_recipe(tmp_path, **overrides))
    return QualityGuards.for_run(loaded, DatasetStore(tmp_path / "store" / "tiny").index_path)


def test_planted_duplicates_within_batch_are_caught_and_unique_rows_kept(tmp_path):
    guards = _guards(tmp_path)
    near = VARIED[0].replace("earth.", "planet earth.")
    rows = [_row(t, i) for i, t in enumerate([*VARIED, VARIED[1].upper(), near])]
    kept, dropped = guards.screen(rows)
    assert [r["text"] for r in kept] == VARIED
    assert sorted(reason.split(":")[0] for _, reason in dropped) == ["exact_duplicate", "near_duplicate"]


def test_duplicates_of_an_older_version_and_of_an_earlier_batch_are_caught(tmp_path):
    store = DatasetStore(tmp_path / "store" / "tiny")
    write_version_index(store.index_path, 1, VARIED[:3], ["old0", "old1", "old2"], [1, 1, 1])
    guards = _guards(tmp_path)
    kept, dropped = guards.screen([_row(VARIED[2] + " Really.", 1), _row(VARIED[3], 2)])
    assert [r["text"] for r in kept] == [VARIED[3]]
    assert dropped[0][1] == "near_duplicate: of old2"

    first = BatchState("b1", 0, "validated", rows=[_row(VARIED[4], 1)], status="passed")
    second = BatchState("b2", 1, "validated", rows=[_row(VARIED[4] + " Indeed!", 2), _row(VARIED[5], 3)],
                        status="passed")
    out = dedup_across_run([second, first], guards)
    assert [r["text"] for r in out[1].rows] == [VARIED[5]]
    assert out[1].rejected[0]["reason"].startswith("near_duplicate: of r1-")


def test_planted_benchmark_contamination_is_caught_but_common_phrases_are_not(tmp_path):
    bench = tmp_path / "gsm8k.jsonl"
    question = ("Natalia sold clips to forty eight of her friends in April and then she sold half "
                "as many clips in May how many clips did Natalia sell altogether in April and May")
    bench.write_text(json.dumps({"question": question, "answer": "72"}) + "\n")
    guards = _guards(tmp_path, quality__decontamination={"benchmarks": [{"name": "gsm8k", "path": str(bench)}]})
    leaked = _row("Here is a puzzle: " + " ".join(question.split()[:15]) + " and so on, solve it.", 1)
    common = _row("How many clips did you sell in April and May? I sold half as many in May as in April.", 2)
    kept, dropped = guards.screen([leaked, common])
    assert [r["id"] for r in kept] == [common["id"]]
    assert dropped[0][1] == "contaminated:gsm8k"


@pytest.mark.parametrize("text, reason", [
    ("Too short.", "too_short"),
    ("the cat sat on the mat " * 12, "repetitive"),
    ("As an AI language model, I cannot help with explaining tides to you today.", "refusal"),
    ("Las mareas son causadas por la atracción gravitacional de la luna sobre los océanos.", "wrong_language"),
    ("Explain in two sentences why the moon causes tides on the earth, says the teacher.", "instruction_echo"),
])
def test_heuristic_filters_reject_with_a_reason_code(tmp_path, text, reason):
    guards = _guards(tmp_path)
    prompt = "Explain in two sentences why the moon causes tides on the earth."
    kept, dropped = guards.screen([_row(text, prompt=prompt), _row(VARIED[0], 9, prompt=prompt)])
    assert [r["text"] for r in kept] == [VARIED[0]]
    assert dropped[0][1].split(":")[0] == reason


def test_the_recipes_filter_keys_reach_the_registered_screens(tmp_path):
    """`quality.filters` keys are split among the screens in synthfactory.registry.SCREENS: a
    lowered `min_chars` lets a short row through, `language: null` turns detection off."""
    guards = _guards(tmp_path, quality__filters={"min_chars": 5, "language": None})
    short, spanish = _row("Tides rise.", 1), _row(
        "Las mareas son causadas por la atracción gravitacional de la luna sobre los océanos.", 2)
    kept, dropped = guards.screen([short, spanish])
    assert [r["id"] for r in kept] == [short["id"], spanish["id"]] and not dropped
    assert all(r["language"] is None and "repeated_ngram_ratio" in r for r in kept)
    assert [type(s).__name__ for s in guards.screens] == ["LengthScreen", "RepetitionScreen", "RefusalScreen",
                                                          "LanguageScreen", "InstructionEchoScreen"]


def test_degenerate_batch_fails_the_diversity_expectation_and_a_varied_batch_passes(tmp_path):
    suite = {"name": "diverse", "expectations": [
        {"type": "expect_column_min_to_be_between",
         "kwargs": {"column": "batch_embedding_diversity", "min_value": 0.3}},
        {"type": "expect_column_min_to_be_between", "kwargs": {"column": "batch_distinct_2", "min_value": 0.5}},
    ]}
    guards = _guards(tmp_path, suite=suite)
    loaded = load_recipe(tmp_path / "tiny.yaml")
    gate = SuiteGate(loaded.suite_path)
    plan = plan_run(loaded, load_seeds(loaded.recipe.seeds, loaded.seeds_path), 1)
    paraphrases = ["The moon pulls the sea, which makes the tides.", "The moon's pull on the sea makes tides.",
                   "Tides happen because the moon pulls the sea.", "The sea is pulled by the moon, making tides.",
                   "Because the moon pulls on the sea, we get tides.", "Tides: the moon pulling the sea."]
    outcomes = {}
    for name, texts in (("degenerate", paraphrases), ("varied", VARIED)):
        state = BatchState("b", 0, "filtered", rows=[_row(t, i) for i, t in enumerate(texts)])
        measured = measure_batch(plan, state, guards)
        outcomes[name] = settle_validation(measured, gate.validate(measured.rows))
    assert outcomes["degenerate"].status == "quarantined"
    failed = outcomes["degenerate"].validation["failed_expectations"]
    assert "expect_column_min_to_be_between(batch_embedding_diversity)" in failed
    assert outcomes["varied"].status == "passed"
    assert (outcomes["varied"].rows[0]["batch_embedding_diversity"]
            > outcomes["degenerate"].quarantined[0]["batch_embedding_diversity"])


def test_recycled_seeds_are_flagged_with_the_matched_depth(tmp_path):
    store = DatasetStore(tmp_path / "store" / "tiny")
    write_version_index(store.index_path, 1, [VARIED[0], VARIED[1]], ["syn0", "real1"], [2, 0])
    seeds_text = f"{VARIED[0]}\n{VARIED[1]}\nvolcanoes\n".encode()
    guards = _guards(tmp_path, seeds_text=seeds_text)
    loaded = load_recipe(tmp_path / "tiny.yaml")
    seeds = guards.flag_recycled(load_seeds(loaded.recipe.seeds, loaded.seeds_path))
    assert [(s.recycled, s.source, s.generation_depth) for s in seeds.rows] == [
        (True, "synthetic", 2), (False, "real", 0), (False, "real", 0)]
    assert plan_run(loaded, seeds, 1).seeds_recycled == 1


def test_real_rows_take_only_the_named_field(tmp_path):
    from synthfactory.errors import RecipeError

    real = tmp_path / "real.jsonl"
    real.write_text("\n".join(json.dumps({"text": t, "url": f"https://example.org/{i}"})
                              for i, t in enumerate(VARIED[:2])) + "\n")
    guards = _guards(tmp_path, seeds__real={"path": str(real), "field": "text", "share": 0.5})
    assert guards.real_texts == VARIED[:2]
    rows = guards.real_rows(_row(VARIED[3]), guards.real_count(2), start=0)
    assert [(r["text"], r["source"], r["generation_depth"]) for r in rows] == [
        (VARIED[0], "real", 0), (VARIED[1], "real", 0)]
    with pytest.raises(RecipeError, match="no field 'body'"):
        _guards(tmp_path, seeds__real={"path": str(real), "field": "body", "share": 0.5})


def test_the_reference_sample_is_embedded_once_per_reference_and_kept_in_the_cache_folder(tmp_path, monkeypatch):
    """Every run of a recipe with `quality.reference` needs the same 512 paragraphs embedded: they
    are embedded once, kept per process and in the user's cache folder; other texts are embedded anew,
    and a torn cache file is embedded again, never read as vectors."""
    import numpy as np

    from synthfactory.quality import tails

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(tails, "_VECTORS", {})
    calls: list[int] = []

    def encode(ids, texts):
        calls.append(len(texts))
        rng = np.random.default_rng(len(calls))
        vectors = rng.normal(size=(len(texts), 8)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    texts = [f"paragraph {i} about {w}" for i, w in enumerate(["sets", "loops", "files", "dicts"] * 10)]
    first = tails.ReferenceTails(texts, encode)
    first._embed()
    tails.ReferenceTails(texts, encode)._embed()
    assert calls == [40]  # the second run of the same reference reuses the first's vectors
    [kept] = list((tmp_path / "cache" / "synthfactory" / "reference-vectors").glob("*.npy"))
    monkeypatch.setattr(tails, "_VECTORS", {})  # a new process: read back from the cache folder
    again = tails.ReferenceTails(texts, encode)
    assert np.array_equal(again.vectors, first.vectors) and calls == [40]
    tails.ReferenceTails(texts[:-1], encode)._embed()  # another reference: embedded
    assert calls == [40, 39]
    kept.write_bytes(kept.read_bytes()[:20])  # torn
    monkeypatch.setattr(tails, "_VECTORS", {})
    tails.ReferenceTails(texts, encode)._embed()
    assert calls == [40, 39, 40]


def test_langid_loads_its_model_once_when_batches_are_screened_at_once(monkeypatch):
    """langid's `classify` loads its model whenever its global is unset: batches screened at once in
    worker threads each decompressed it (about 1.5 s of CPU each, taken from the engines)."""
    import threading

    from langid import langid

    from synthfactory.quality import text
    from synthfactory.quality.text import language

    loads: list[int] = []
    load = text._langid_identifier
    monkeypatch.setattr(langid, "identifier", None)
    monkeypatch.setattr(text, "_langid_identifier", lambda: (loads.append(1), load())[1])
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(language("The tide rises twice a day here.")))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == [1] and answers == ["en"] * 6


def test_langid_model_is_decoded_once_and_read_back_from_the_cache_unchanged(tmp_path, monkeypatch):
    """The decoded model kept in the user's cache gives langid's own identifier, array for array and
    answer for answer; a torn cache file is decoded again and rewritten."""
    import numpy as np
    from langid import langid

    from synthfactory.quality import text

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    reference = langid.LanguageIdentifier.from_modelstring(langid.model)
    decoded = text._langid_identifier()
    [kept] = list((tmp_path / "cache" / "synthfactory" / "langid").glob("*.npz"))
    decodes: list[int] = []
    real = langid.LanguageIdentifier.from_modelstring
    monkeypatch.setattr(langid.LanguageIdentifier, "from_modelstring",
                        classmethod(lambda cls, *a, **k: (decodes.append(1), real(*a, **k))[1]))
    cached = text._langid_identifier()
    assert decodes == []  # read back, not decoded
    samples = ["The tide rises twice a day here.", "Das ist ein Haus am See.", "C'est la vie, mon ami.",
               "这是一个测试", "def f(x): return x + 1", "Hola, ¿cómo estás hoy?"]
    for identifier in (decoded, cached):
        assert identifier.nb_classes == reference.nb_classes and identifier.nb_numfeats == reference.nb_numfeats
        assert np.array_equal(identifier.nb_ptc, reference.nb_ptc) and identifier.nb_ptc.dtype == reference.nb_ptc.dtype
        assert np.array_equal(identifier.nb_pc, reference.nb_pc)
        assert identifier.tk_nextmove == reference.tk_nextmove and identifier.tk_output == reference.tk_output
        assert [identifier.classify(s) for s in samples] == [reference.classify(s) for s in samples]
    kept.write_bytes(kept.read_bytes()[:1000])  # torn
    again = text._langid_identifier()
    assert decodes == [1] and again.tk_output == reference.tk_output
    assert kept.stat().st_size > 1_000_000  # rewritten whole
    assert [p.name for p in kept.parent.iterdir()] == [kept.name]  # no partial file beside it
