"""Bad seed rows are quarantined with a reason and counted; good rows become seeds in every format."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from synthfactory.inputs.seeds import load_seeds
from synthfactory.recipe import SeedsConfig, load_recipe
from synthfactory.run.plan import plan_run
from tests.conftest import make_recipe


def test_jsonl_bad_rows_are_quarantined_with_reasons(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_bytes(b"\n".join([
        json.dumps({"topic": "tides"}).encode(),
        b'{"topic": "broken',
        b"\xff\xfe not utf-8",
        b"   ",
        json.dumps({"topic": "x" * 300}).encode(),
        b"[1, 2]",
        json.dumps({"topic": "tides"}).encode(),
        json.dumps({"topic": "volcanoes"}).encode(),
    ]) + b"\n")
    seeds = load_seeds(SeedsConfig(path=str(path), max_chars=200), path)
    plan = plan_run(load_recipe(make_recipe(tmp_path)), seeds, version=1)  # duplicates: on the rendered prompt
    assert [i.seed.fields["topic"] for b in plan.batches for i in b.items][:2] == ["tides", "volcanoes"]
    reasons = {q.location: q.reason.split(":")[0] for q in plan.seeds_quarantined}
    assert reasons == {
        "seeds.jsonl:2": "bad_json", "seeds.jsonl:3": "invalid_utf8", "seeds.jsonl:4": "empty",
        "seeds.jsonl:5": "too_long", "seeds.jsonl:6": "bad_json", "seeds.jsonl:7": "duplicate_seed",
    }
    assert len(seeds.rows) + len(seeds.quarantined) == 8


def test_seed_hygiene_on_what_the_model_would_see(tmp_path):
    """Empty template variables, seeds that render the same prompt up to case and whitespace
    (whatever their ids or unused fields), and seeds carrying benchmark text never reach an engine."""
    recipe = make_recipe(tmp_path, batches__count=None)
    path = tmp_path / "seeds.jsonl"
    rows = [
        {"id": 1, "topic": "tides"},
        {"id": 2, "topic": "   "},                              # empty_field
        {"id": 3, "topic": "  TIDES ", "note": "unused"},       # same prompt as id 1
        {"id": 4, "topic": "Tides", "level": "hard"},           # same prompt as id 1
        {"id": 5, "topic": "the quick brown fox jumps over the lazy dog near the river bank today"},
        {"id": 6, "topic": "volcanoes"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_recipe(recipe)
    seeds = load_seeds(SeedsConfig(path=str(path)), path)
    bench = "the quick brown fox jumps over the lazy dog near the river bank today"
    plan = plan_run(loaded, seeds, version=1, contaminated=lambda text: "bench" if bench in text else None)
    reasons = {q.location: q.reason.split(" ")[0] for q in plan.seeds_quarantined}
    assert reasons == {"seeds.jsonl:2": "empty_field:", "seeds.jsonl:3": "duplicate_seed:",
                       "seeds.jsonl:4": "duplicate_seed:", "seeds.jsonl:5": "contaminated:bench"}
    assert [q.reason for q in plan.seeds_quarantined][0] == "empty_field: topic"
    assert sorted(i.seed.fields["id"] for b in plan.batches for i in b.items) == [1, 6]


def test_a_trailing_sliver_joins_the_batch_before_it():
    from synthfactory.run.plan import batch_bounds

    assert batch_bounds(9, 4) == [(0, 4), (4, 9)]        # 1 left over: joins
    assert batch_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]  # 2, half a batch, stays
    assert batch_bounds(11, 4) == [(0, 4), (4, 8), (8, 11)]  # 3 stays a batch
    assert batch_bounds(3, 8) == [(0, 3)]                # a single small batch stays
    assert batch_bounds(16, 8) == [(0, 8), (8, 16)]


def test_text_parquet_and_saved_dataset_seeds(tmp_path):
    import datasets

    text = tmp_path / "topics.txt"
    text.write_text("tides\n\nvolcanoes\n")
    seeds = load_seeds(SeedsConfig(path=str(text)), text)
    assert [r.fields for r in seeds.rows] == [{"topic": "tides"}, {"topic": "volcanoes"}]
    assert [q.reason for q in seeds.quarantined] == ["empty"]

    parquet = tmp_path / "seeds.parquet"
    pq.write_table(pa.table({"topic": ["tides", None, "volcanoes"]}), parquet)
    seeds = load_seeds(SeedsConfig(path=str(parquet)), parquet)
    assert [r.fields["topic"] for r in seeds.rows] == ["tides", "volcanoes"]
    assert [q.reason for q in seeds.quarantined] == ["empty"]

    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"topic": ["tides", "lava"], "level": [1, 2]}).save_to_disk(str(saved))
    seeds = load_seeds(SeedsConfig(path=str(saved)), saved)
    assert [r.fields for r in seeds.rows] == [{"topic": "tides", "level": 1}, {"topic": "lava", "level": 2}]


def test_rows_missing_a_template_field_are_quarantined_at_planning(tmp_path):
    recipe = make_recipe(tmp_path)
    path = tmp_path / "seeds.jsonl"
    path.write_text(json.dumps({"topic": "tides"}) + "\n" + json.dumps({"subject": "lava"}) + "\n")
    loaded = load_recipe(recipe)
    seeds = load_seeds(SeedsConfig(path=str(path)), path)
    plan = plan_run(loaded, seeds, version=1)
    assert [q.reason for q in plan.seeds_quarantined] == ["template_error: 'topic' is undefined"]


def test_plan_is_deterministic_and_ids_depend_on_version(tmp_path):
    loaded = load_recipe(make_recipe(tmp_path))
    seeds = load_seeds(loaded.recipe.seeds, loaded.seeds_path)
    one, again, two = plan_run(loaded, seeds, 1), plan_run(loaded, seeds, 1), plan_run(loaded, seeds, 2)
    assert [b.batch_id for b in one.batches] == [b.batch_id for b in again.batches]
    assert not {b.batch_id for b in one.batches} & {b.batch_id for b in two.batches}
    assert [len(b.items) for b in one.batches] == [4, 4]
    seeds_per_row = [i.sampling_seed for b in one.batches for i in b.items]
    assert len(set(seeds_per_row)) == len(seeds_per_row)


# -- code seeds: do their tests catch near misses? (synthfactory.verify.mutation) ------------------
PICK = ("def pick(n, items):\n    if n > 0 and n in items:\n        return n * 2\n    else:\n"
        "        return not items\n")
COUNT_BELOW = "def count_below(numbers, limit):\n    return sum(1 for n in numbers if n < limit)\n"
WEAK = "assert count_below([1, 5], 3) == 1"
STRONG = WEAK + ("\nassert count_below([3, 3, 2], 3) == 1\nassert count_below([1, 2], 5) == 2"
                 "\nassert count_below([], 0) == 0")


def _code_verifier():
    """The code recipe's check as code.yaml sets it; bubblewrap is required (make system-deps)."""
    from synthfactory.verify.python_tests import PythonTestsOptions, PythonTestsVerifier

    verifier = PythonTestsVerifier(PythonTestsOptions(timeout_s=5))
    assert verifier.preflight() is None, f"no sandbox for generated code here: {verifier.preflight()}"
    return verifier


def test_mutation_operators_make_the_expected_near_misses():
    """Every operator on one small function, in source order, none equal to the reference or to
    each other, each a program that compiles; no sandbox (nothing runs)."""
    import ast

    from synthfactory.verify.mutation import mutants

    found = mutants(PICK)
    assert [m.description for m in found] == [
        "line 2: n > 0 and n in items -> not (n > 0 and n in items)",  # negated condition
        "line 2: if n > 0 and n in items: body dropped",
        "line 2: if n > 0 and n in items: else dropped",
        "line 2: n > 0 and n in items -> n > 0 or n in items",  # and/or
        "line 2: n > 0 -> n >= 0", "line 2: n > 0 -> n > 1", "line 2: n > 0 -> n > -1",  # comparison, off by one
        "line 2: n in items -> n not in items",
        "line 3: return n * 2 -> return n",  # the first argument, unchanged
        "line 3: return n * 2 -> return None", "line 3: return n * 2 -> return 0",
        "line 3: n * 2 -> n / 2", "line 3: n * 2 -> n * 3", "line 3: n * 2 -> n * 1",  # arithmetic
        "line 5: return not items -> return n", "line 5: return not items -> return None",
        "line 5: return not items -> return 0",
        "line 5: not items -> items",  # `not` dropped
    ]
    sources = [m.source for m in found]
    assert len(set(sources)) == len(sources) and ast.unparse(ast.parse(PICK)) not in sources
    assert "    if not (n > 0 and n in items):\n        return n * 2" in sources[0]
    assert [m.source for m in mutants(PICK)] == sources  # deterministic
    for source in sources:
        compile(source, "<mutant>", "exec")
    assert [m.description for m in mutants("def f(a, b=1):\n    while a < b:\n        a += 1\n    return a\n")] == [
        "line 1: 1 -> 2", "line 1: 1 -> 0", "line 2: a < b -> not a < b", "line 2: a < b -> a <= b",
        "line 3: a += 1 -> a -= 1", "line 3: a += 1 -> a += 2", "line 3: a += 1 -> a += 0",
        "line 4: return a -> return None", "line 4: return a -> return 0"]  # a is the first argument already
    assert [m.description for m in mutants("def g(words):\n    return [w for w in words if w]\n")][1:4] == [
        "line 2: return [w for w in words if w] -> return None", "line 2: return [w for w in words if w] -> return 0",
        "line 2: return [w for w in words if w] -> return []"]  # the empty value of an evident type


def test_weak_tests_leave_survivors_and_strong_ones_kill_them(tmp_path):
    """Through the real verifier (the sandbox): one example kills the mutants that change it and
    lets `<=` for `<` and the negated filter through; boundary cases kill those too. A reference
    that fails its own tests is reported broken; a second check of the same seed is read back
    from the cache."""
    from synthfactory.verify.mutation import mutation_score, mutation_scores

    verifier = _code_verifier()
    weak, strong, broken = mutation_scores([
        ({"name": "weak", "tests": WEAK}, COUNT_BELOW),
        ({"name": "strong", "tests": STRONG}, COUNT_BELOW),
        ({"name": "broken", "tests": "assert count_below([1], 5) == 2"}, COUNT_BELOW),
    ], verifier, cache=tmp_path)
    assert (weak.killed, weak.total) == (5, 7) and weak.broken is None
    assert weak.survivors == ("line 2: n < limit -> not n < limit", "line 2: n < limit -> n <= limit")
    assert (strong.killed, strong.total, strong.survivors, strong.score) == (7, 7, (), 1.0)
    assert broken.broken.startswith("reference: tests_failed") and broken.score == 0.0
    again = mutation_score({"name": "weak", "tests": WEAK}, COUNT_BELOW, verifier, cache=tmp_path)
    assert again.cached and (again.killed, again.total, again.survivors) == (weak.killed, weak.total, weak.survivors)
    assert not mutation_score({"name": "broken", "tests": "assert count_below([1], 5) == 2"}, COUNT_BELOW,
                              verifier, cache=tmp_path).cached  # a broken result is never kept


def test_seeds_check_prints_scores_and_exits_1_under_the_minimum(tmp_path):
    """`synthfactory seeds check RECIPE`: a line per seed (killed/total, score, survivors) and the
    overall score; exit 1 with a seed under --min-score, 0 without; the second run reads the
    cache; a minimum out of range is one line and exit 2."""
    import os
    import subprocess

    import yaml

    from tests.conftest import cli_command

    rows = [{"task": "count below, weak", "tests": WEAK, "reference": COUNT_BELOW},
            {"task": "count below, strong", "tests": STRONG, "reference": COUNT_BELOW},
            {"task": "no reference", "tests": WEAK}]
    (tmp_path / "code.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = make_recipe(tmp_path, name="code", seeds__path="code.jsonl", seeds__format="jsonl", seeds__max_chars=2000,
                         generation__prompt_template="{{ task }}",
                         verification=[{"name": "tests", "method": "python_tests", "options": {"timeout_s": 5}}])
    data = yaml.safe_load(recipe.read_text())
    data.pop("grading")
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def check(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run(cli_command("seeds", "check", str(recipe), *flags), capture_output=True, text=True,
                              env=env, timeout=300)

    under = check("--min-score", "0.9")
    assert under.returncode == 1, under.stderr
    lines = under.stdout.splitlines()
    assert "2 seeds with tests and a reference (1 without" in lines[0]
    assert lines[1].split()[:2] == ["code.jsonl:1", "5/7"] and " 0.71  BELOW" in lines[1]
    assert "BELOW" in lines[1] and "survivors: line 2: n < limit -> not n < limit; line 2: n < limit -> n <= limit" \
        in lines[1]
    assert "7/7" in lines[2] and "1.00" in lines[2] and "BELOW" not in lines[2] and "survivors" not in lines[2]
    assert lines[-1].startswith("overall: 12/14 mutants killed (0.86)") and "0 seeds from the cache" in lines[-1]
    assert "1 seeds below --min-score 0.9" in under.stderr and "Traceback" not in under.stderr

    over = check("--min-score", "0.7", "--json")
    assert over.returncode == 0, over.stderr
    report = json.loads(over.stdout)
    assert (report["killed"], report["total"], report["below"]) == (12, 14, [])
    assert [s["cached"] for s in report["seeds"]] == [True, True]

    bad = check("--min-score", "2")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "synthfactory: error: --min-score 2.0: give a share from 0 to 1"


# -- the shipped code seeds (recipes/seeds/code.jsonl, written by recipes/seeds/make_code.py) -------
FIRST_36 = ("add square is_even maximum minimum total average reverse_string is_palindrome count_vowels first_item "
            "last_item count_words factorial fibonacci celsius_to_fahrenheit absolute count_occurrences "
            "remove_duplicates evens double_all to_upper capitalize_words is_prime gcd sum_of_digits count_char "
            "repeat_string clamp count_positive join_words starts_with_vowel sort_numbers product word_lengths "
            "merge_dicts").split()


def _shipped_code_seeds() -> list[dict]:
    from tests.conftest import ROOT

    return [json.loads(line) for line in (ROOT / "recipes" / "seeds" / "code.jsonl").read_text().splitlines()]


def test_code_seeds_keep_the_quickstart_first_and_a_fifth_held_out():
    """The 36 functions the quickstart always generated from come first, in order, and `make run`
    (batches.max_candidates: 72) still generates 2 tries of each and nothing else; the prompts show
    signature and description, never the reference or the tests; every 4th seed after the first 36
    is held out."""
    from tests.conftest import ROOT

    seeds = _shipped_code_seeds()
    assert len(seeds) >= 150 and [s["name"] for s in seeds[:36]] == FIRST_36
    assert all(s["reference"].startswith(("def ", "import ", "from ")) for s in seeds)
    held = [k for k, s in enumerate(seeds) if s["split"] == "heldout"]
    assert held == list(range(39, len(seeds), 4)) and {s["split"] for s in seeds} == {"train", "heldout"}
    assert 0.18 <= len(held) / len(seeds) <= 0.22
    loaded = load_recipe(ROOT / "recipes" / "code.yaml")
    plan = plan_run(loaded, load_seeds(loaded.recipe.seeds, loaded.seeds_path), version=1)
    items = [i for b in plan.batches for i in b.items]
    assert len(items) == 72 and plan.capped and not plan.seeds_quarantined
    assert [i.seed.fields["name"] for i in items] == [name for name in FIRST_36 for _ in range(2)]
    for item in items:
        shown = " ".join(m["content"] for m in item.messages)
        assert item.seed.fields["signature"] in shown and item.seed.fields["description"] in shown
        assert item.seed.fields["reference"] not in shown and item.seed.fields["tests"] not in shown


def test_shipped_code_seeds_tests_kill_their_near_misses():
    """The mutation bar on a deterministic sample of the shipped seeds (every 10th: the whole check
    runs ~2,700 sandboxed programs, minutes on 2 cores; `synthfactory seeds check recipes/code.yaml
    --min-score 0.8` runs it all, cached): every seed kills at least 80% of its reference's mutants
    and the sample at least 90% overall, through the real verifier."""
    from synthfactory.verify.mutation import mutation_scores

    sample = _shipped_code_seeds()[::10]
    reports = mutation_scores([(s, s["reference"]) for s in sample], _code_verifier())
    assert not [r.name for r in reports if r.broken]
    assert [(r.name, r.survivors) for r in reports if r.score < 0.8] == []
    killed, total = sum(r.killed for r in reports), sum(r.total for r in reports)
    assert killed / total >= 0.9, (killed, total)


def test_a_recipe_minimum_mutation_score_quarantines_weak_seeds_before_generation(tmp_path, monkeypatch):
    """python_tests' `min_mutation_score`: planning mutation-tests the seeds the run will use (the
    real sandbox), quarantines the weak one, the broken one and the one without a reference as
    `weak_tests: ...`, and takes the next seeds in their place."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # cold: nothing from earlier runs
    rows = [
        {"task": "strong", "tests": STRONG, "reference": COUNT_BELOW},
        {"task": "weak", "tests": WEAK, "reference": COUNT_BELOW},
        {"task": "no reference", "tests": STRONG},
        {"task": "broken", "tests": "assert count_below([1], 5) == 2", "reference": COUNT_BELOW},
        {"task": "strong again", "tests": STRONG + "\nassert count_below([0], 1) == 1", "reference": COUNT_BELOW},
        {"task": "unused", "tests": WEAK, "reference": COUNT_BELOW},
    ]
    (tmp_path / "code.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = make_recipe(tmp_path, name="code", seeds__path="code.jsonl", seeds__format="jsonl",
                         generation__prompt_template="Write count_below: {{ task }}",
                         generation__samples_per_seed=1, batches__size=2, batches__max_candidates=2,
                         seeds__max_chars=2000,
                         verification=[{"name": "tests", "method": "python_tests",
                                        "options": {"min_mutation_score": 0.9}}])
    loaded = load_recipe(recipe)
    plan = plan_run(loaded, load_seeds(loaded.recipe.seeds, loaded.seeds_path), version=1)
    assert [i.seed.fields["task"] for b in plan.batches for i in b.items] == ["strong", "strong again"]
    reasons = {json.loads(q.payload)["task"]: q.reason for q in plan.seeds_quarantined}
    assert reasons == {"weak": "weak_tests: mutation score 0.71 < 0.9 (5 of 7 mutants killed)",
                       "no reference": "weak_tests: no reference solution to mutation-test",
                       "broken": "weak_tests: reference: tests_failed: AssertionError at test line 1"}
