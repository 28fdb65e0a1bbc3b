"""The verified example recipes (recipes/math.yaml, math_preference.yaml, code.yaml, grounded.yaml):
their seeds, and each end to end on the bundled model, small. Then the independent re-check: the
published rows of math.yaml and code.yaml are checked again here, without the verifiers' code
(math answers recomputed from each seed's template and numbers, code run against its tests in a
sandbox this test builds itself), and no row is wrong. The published sets are not empty (fixed
seeds and sampling seeds on the bundled model), so the re-check has rows to fail on.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from synthfactory.inputs.seeds import load_seeds
from synthfactory.recipe import SeedsConfig, load_recipe
from tests.conftest import write_recipe

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "recipes" / "seeds"
VERIFIED = ("math", "math_preference", "code", "grounded")


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, SEEDS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- the re-check's own arithmetic: written here, not imported from the seed generator -----------
RECOMPUTE = {
    "add": lambda n: Fraction(n["a"] + n["b"]),
    "subtract": lambda n: Fraction(n["a"] - n["b"]),
    "multiply": lambda n: Fraction(n["a"] * n["b"]),
    "divide": lambda n: Fraction(n["a"], n["b"]),
    "length": lambda n: Fraction(n["a"] - n["b"]),
    "price": lambda n: Fraction(n["a"] * n["b"]),
    "half_price": lambda n: (Fraction(2 * n["a"] + 1, 2)) * n["b"],
    "pages": lambda n: Fraction(n["a"] * n["b"]),
    "buy_then_eat": lambda n: Fraction(n["a"] * n["b"] - n["c"]),
    "add_three": lambda n: Fraction(n["a"] + n["b"] + n["c"]),
}
FINAL_LINE = re.compile(r"^[\s>#*_-]*(?:final\s+)?answer\s*[*_]*\s*:\s*(.*)$", re.IGNORECASE)
STATED_LINE = re.compile(r"^(?:.*[.!?]\s+)?(?:so,?\s+|therefore,?\s+)"
                         r"?(?:the\s+(?:final\s+)?answer\s+is:?|####)\s*(.*)$", re.IGNORECASE)
PLAIN = re.compile(r"^[*_\s]*(?:\\?\$)?\s*(-?\d[\d,]*(?:\.\d+)?|-?\d+/\d+)\s*(?:[A-Za-z][A-Za-z ]*)?\.?[*_\s]*$")


def final_number(text: str) -> Fraction | None:
    """The solution's final answer as an exact number: `\\boxed{N}` last, else the last `Answer:`
    line (the next line when it is empty), else the last line when it states the answer ("The
    answer is N." or `#### N`); an equation counts by its right side. None when it is not a plain
    number (a grade-school answer always is)."""
    boxes = re.findall(r"\\boxed\{([^{}]*)\}", text)
    lines = text.splitlines()
    found = [k for k, line in enumerate(lines) if FINAL_LINE.match(line)]
    if boxes:
        answer = boxes[-1]
    elif found:
        answer = FINAL_LINE.match(lines[found[-1]]).group(1)
        if not answer.strip("*_ "):
            answer = next((line for line in lines[found[-1] + 1:] if line.strip()), "")
    else:
        stated = STATED_LINE.match(next((line for line in reversed(lines) if line.strip()), ""))
        if not stated:
            return None
        answer = stated.group(1).strip().strip("\".")
    answer = answer.rsplit("=", 1)[-1]
    match = PLAIN.match(answer)
    return Fraction(match.group(1).replace(",", "")) if match else None


def test_the_re_check_reads_answers_as_a_person_would():
    assert final_number("3 + 4 = 7 apples.\nAnswer: 7") == 7
    assert final_number("Answer: $19.50") == Fraction(39, 2)
    assert final_number("**Answer:** 1,200 pencils.") == 1200
    assert final_number("so 6 * 3 = 18\nAnswer: 6 * 3 = 18") == 18
    assert final_number("It is \\boxed{42}.") == 42
    assert final_number("Answer:\n12") == 12
    assert final_number("The answer is 7.") == 7 and final_number("Answer: 11 or 12") is None
    assert final_number("3 * 4 = 12\n#### 12\nThe answer is \"12\".") == 12 and final_number("#### 12") == 12
    assert final_number("The answer is 7.\nIt is a classic puzzle.") is None
    assert final_number("Answer: 5\nmore text\nAnswer: 6") == 6


# -- seeds ----------------------------------------------------------------------------------------
def test_math_seeds_are_the_generator_output_and_right():
    """The committed seeds are what `python recipes/seeds/make_math.py` writes (deterministic), and
    every answer equals this test's own arithmetic on the seed's numbers, which the question shows."""
    make_math = _module("make_math")
    committed = _jsonl(SEEDS / "math.jsonl")
    assert [json.loads(json.dumps(p, sort_keys=True)) for p in make_math.problems()] == committed
    assert len(committed) == 200 and len({s["question"] for s in committed}) == 200
    assert set(RECOMPUTE) == {s["template"] for s in committed}
    for seed in committed:
        assert Fraction(seed["answer"]) == RECOMPUTE[seed["template"]](seed["numbers"]), seed
        assert all(str(v) in seed["question"] for k, v in seed["numbers"].items() if k != "a"
                   or seed["template"] != "half_price"), seed
        assert not re.search(r"\.\d{4,}", seed["answer"]), "answers are short plain numbers"


def test_code_seeds_are_the_generator_output_and_their_tests_have_teeth():
    """Each seed's tests pass on its reference solution and fail on a stub (make_code.check), and
    the committed seeds are the generator's output."""
    make_code = _module("make_code")
    assert make_code.check() == []
    committed = _jsonl(SEEDS / "code.jsonl")
    assert committed == [json.loads(json.dumps(s, sort_keys=True)) for s in make_code.seeds()]
    assert len(committed) >= 150 and len({s["name"] for s in committed}) == len(committed)
    for seed in committed:
        assert seed["signature"].startswith(seed["name"] + "(")
        assert all(line.startswith("assert ") and seed["name"] + "(" in line for line in seed["tests"].splitlines())


def test_a_corpus_as_seeds_gives_each_passage_as_its_source():
    """`seeds.path: corpus:python-docs`: every passage is a seed row whose `source` is the passage,
    the field the grounded verifier needs."""
    from synthfactory.inputs.corpus import corpus_file

    path = corpus_file("python-docs", "seeds.path")
    seeds = load_seeds(SeedsConfig(path="corpus:python-docs", max_chars=4000), path)
    assert len(seeds.rows) > 1000 and not seeds.quarantined
    assert all(s.fields["source"] == s.fields["text"] and s.fields["source"] for s in seeds.rows)
    plain = load_seeds(SeedsConfig(path=str(path), max_chars=4000), path)  # the same file named as a file
    assert "source" not in plain.rows[0].fields and plain.rows[0].seed_id == seeds.rows[0].seed_id


@pytest.mark.parametrize("name", VERIFIED)
def test_the_verified_recipes_load_without_a_judge(name):
    loaded = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    assert loaded.recipe.grading is None and loaded.recipe.verification
    suite = json.loads((ROOT / "expectations" / f"{name}.json").read_text())
    columns = {e["kwargs"].get("column") for e in suite["expectations"]}
    assert {f"batch_verify_pass_rate_{v.name}" for v in loaded.recipe.verification} <= columns


def test_code_rows_keep_only_the_code_block_the_verifier_runs():
    """code.yaml's `keep: code_block`: the row's answer is the last python block, without the prose
    around it; an answer without one is quarantined as no_code_block."""
    from synthfactory.engines.base import ChatResult
    from synthfactory.methods import method_for
    from synthfactory.methods.base import Fail, Row

    method = method_for(load_recipe(ROOT / "recipes" / "code.yaml").recipe)
    answer = ("Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
              "This uses Python's built-in `add` function.")
    made = method.parse(None, [ChatResult(answer, "stop", 1, 1, 0.0)])
    assert isinstance(made, Row) and made.fields["text"] == "```python\ndef add(a, b):\n    return a + b\n```"
    prose = method.parse(None, [ChatResult("Use a + b.", "stop", 1, 1, 0.0)])
    assert isinstance(prose, Fail) and prose.reason == "no_code_block"
    whole = method_for(load_recipe(ROOT / "recipes" / "math.yaml").recipe)
    assert whole.parse(None, [ChatResult(answer, "stop", 1, 1, 0.0)]).fields["text"] == answer


# -- end to end on the bundled model ------------------------------------------------------------------
def _small(tmp_path: Path, name: str, seeds: list[dict] | None, **changes) -> Path:
    """The shipped recipe with its seeds cut to `seeds` (a JSONL beside it) and its suite by path."""
    recipe = yaml.safe_load((ROOT / "recipes" / f"{name}.yaml").read_text())
    if seeds is not None:
        (tmp_path / f"{name}-seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds))
        recipe["seeds"]["path"] = f"{name}-seeds.jsonl"
    recipe["validation"]["suite"] = str((ROOT / "recipes" / recipe["validation"]["suite"]).resolve())
    recipe["quality"]["embeddings"] = name == "grounded"  # grounded embeds anyway; the rest need no MiniLM
    return write_recipe(tmp_path, name, recipe, changes)


def _published(store: Path, name: str, summary: dict) -> list[dict]:
    import synthfactory
    from synthfactory.store import DatasetStore

    assert summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"]
    quarantine = DatasetStore(str(store / name)).read_quarantine().to_pylist()
    assert len(quarantine) == summary["rejected"] + summary["quarantined"]  # nothing lost
    assert any(q["stage"] == "verify" and q["reason"].startswith("verify_failed: ") for q in quarantine), \
        "the bundled model gets some wrong: the verifier must have quarantined them"
    rows = synthfactory.load_dataset_version(str(store / name)).to_list()
    assert len(rows) == summary["accepted"] > 0, "a re-check over no rows could not fail"
    print(f"{name}: {len(rows)} of {summary['generated']} published")  # pytest -s shows the margin
    for row in rows:
        verdicts = json.loads(row["verification"]).values()
        if "chosen" in row:  # a pair: each candidate's verdict; one right, one wrong at least
            outcomes = {c["passed"] for v in verdicts for c in v["details"]["candidates"]}
            assert outcomes == {True, False}, row["verification"]
        else:
            assert all(v["passed"] for v in verdicts)
        assert row["judge_model"] is None and row["score"] is None
    return rows


# problems of recipes/seeds/math.jsonl the bundled model solved in the README's yield run, so the
# published set is not empty
MATH_SEEDS = [7, 9, 26, 30, 36, 52, 61]
CODE_SEEDS = ["add", "square", "is_even", "total", "reverse_string", "count_words"]


@pytest.fixture(scope="module")
def heavy(ray_cluster):
    """Heavy tests share one Ray cluster (run them under the shared lock: flock /tmp/sf-heavy.lock)."""
    return ray_cluster


def sandboxed_python(code: str, workdir: Path, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run model-written code here, apart from synthfactory's sandbox: bubblewrap with no network,
    a read-only system, only `workdir` writable, and a fresh environment; CPU and memory limited."""
    script = workdir / "recheck.py"
    script.write_text(code, encoding="utf-8")
    python = os.path.realpath(shutil.which("python3", path="/usr/bin:/bin") or sys.executable)
    limits = "ulimit -t 10 -v 1000000 -f 10000; "
    bwrap = shutil.which("bwrap")
    if bwrap:
        command = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
                   "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                   "--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                   "--bind", str(workdir), "/work", "--chdir", "/work", "--setenv", "PATH", "/usr/bin",
                   "/bin/sh", "-c", limits + f"exec {python} -I -S /work/recheck.py"]
    else:  # no bubblewrap: an isolated interpreter in the temp directory, with the same limits
        command = ["/bin/sh", "-c", limits + f'exec "{python}" -I -S recheck.py']
    return subprocess.run(command, cwd=workdir, env={"PATH": "/usr/bin:/bin"} if not bwrap else {},
                          capture_output=True, text=True, timeout=timeout)


def last_python_block(text: str) -> str | None:
    """This test's own reading of the code a response ships: the last ```python block (closed or
    cut off at the end), else the last unlabelled one."""
    blocks = re.findall(r"^[ \t]*```[ \t]*(\w*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", text, re.DOTALL | re.MULTILINE)
    for wanted in (("python", "py", "python3"), ("",)):
        found = [code for label, code in blocks if label.lower() in wanted and code.strip()]
        if found:
            return found[-1]
    return None


def test_the_re_check_sandbox_runs_right_code_and_catches_wrong_code(tmp_path, monkeypatch):
    ok = sandboxed_python("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\n", tmp_path)
    assert ok.returncode == 0, ok.stderr
    wrong = sandboxed_python("def add(a, b):\n    return a - b\nassert add(2, 3) == 5\n", tmp_path)
    assert wrong.returncode != 0 and "AssertionError" in wrong.stderr
    monkeypatch.setenv("RECHECK_SECRET", "s3cr3t")
    env = sandboxed_python("import os\nprint(sorted(os.environ))\n", tmp_path)
    assert env.returncode == 0 and "RECHECK_SECRET" not in env.stdout and "s3cr3t" not in env.stdout
    canary = tmp_path.parent / "canary.txt"
    canary.write_text("unchanged")
    write = sandboxed_python(f"open({str(canary)!r}, 'w').write('changed')\n", tmp_path)
    assert write.returncode != 0 and canary.read_text() == "unchanged"
    assert last_python_block("x\n```python\ndef f():\n    return 1\n```\nthen\n```python\n"
                             "print(f())\n```") == "print(f())\n"
    assert last_python_block("```python\ndef f():\n    return 1") == "def f():\n    return 1"


def test_math_end_to_end_and_the_independent_re_check(tmp_path, heavy):
    """math.yaml on the bundled model (local executor), then every published solution's final
    answer against this test's arithmetic on the seed's numbers. The verify stage in a real run
    (was test_verify_stage.py's end-to-end test): every row that reached it is checked, failures
    are quarantined at it, and the verifier's counts are the version's metric and the batch column."""
    from synthfactory.run.driver import run_recipe
    from synthfactory.store import DatasetStore

    seeds = _jsonl(SEEDS / "math.jsonl")
    recipe = _small(tmp_path, "math", [seeds[i] for i in MATH_SEEDS], generation__samples_per_seed=6,
                    batches={"size": 42})
    summary = run_recipe(recipe, tmp_path / "store")
    rows = _published(tmp_path / "store", "math", summary)
    for row in rows:
        seed = json.loads(row["seed"])
        assert row["prompt"] == seed["question"]
        expected = RECOMPUTE[seed["template"]](seed["numbers"])
        assert final_number(row["text"]) == expected, (row["text"], expected)

    store = DatasetStore(str(tmp_path / "store" / "math"))
    quarantine = store.read_quarantine().to_pylist()
    failed = [q for q in quarantine if q["reason"].startswith("verify_failed: ")]
    assert all(q["stage"] == "verify" for q in failed)
    meta = store.versions()[-1].metadata
    assert meta.judge_model is None and meta.mean_score is None
    assert summary["batches"] == 1  # one batch holds the run: its pass rates are the version's
    # the verifiers in order, the first failure settling a row: the first checks every row that reached
    # the stage, each next one the rows the one before passed
    checked = summary["generated"] - sum(q["stage"] in ("generate", "screen") for q in quarantine)
    for name, method in (("answer", "math_answer"), ("working", "math_working")):
        passed = checked - sum(q["reason"].startswith(f"verify_failed: {name}: ") for q in failed)
        assert meta.verification[name].model_dump() == {"method": method, "checked": checked, "passed": passed,
                                                        "rate": round(passed / checked, 6)}
        assert {r[f"batch_verify_pass_rate_{name}"] for r in rows} == {meta.verification[name].rate}
        checked = passed
    assert 0.0 < meta.verification["answer"].rate < 1.0


def test_math_preference_pairs_are_a_right_and_a_wrong_solution(tmp_path, heavy):
    from synthfactory.run.driver import run_recipe

    seeds = _jsonl(SEEDS / "math.jsonl")
    recipe = _small(tmp_path, "math_preference", [seeds[i] for i in MATH_SEEDS], batches={"size": 7})
    summary = run_recipe(recipe, tmp_path / "store")
    rows = _published(tmp_path / "store", "math_preference", summary)
    for row in rows:
        seed = json.loads(row["seed"])
        expected = RECOMPUTE[seed["template"]](seed["numbers"])
        assert row["chosen"][:-1] == row["rejected"][:-1] and row["chosen"][-2]["content"] == seed["question"]
        assert final_number(row["chosen"][-1]["content"]) == expected
        assert final_number(row["rejected"][-1]["content"]) != expected
        assert (row["score_chosen"], row["score_rejected"]) == (1.0, 0.0)


def test_code_through_the_prefect_flow_and_the_independent_re_check(tmp_path, heavy, prefect_api_url):
    """code.yaml through the Prefect flow, then every published function run against its seed's
    tests in this test's own sandbox, apart from python_tests."""
    from flows.factory import factory_flow

    seeds = [s for s in _jsonl(SEEDS / "code.jsonl") if s["name"] in CODE_SEEDS]
    recipe = _small(tmp_path, "code", seeds, batches={"size": 12})
    summary = factory_flow(recipe_path=str(recipe), store=str(tmp_path / "store"))
    recheck_in_sandbox(_published(tmp_path / "store", "code", summary), tmp_path)


def test_grounded_end_to_end_keeps_only_answers_the_passage_supports(tmp_path, heavy):
    from synthfactory.run.driver import run_recipe

    recipe = _small(tmp_path, "grounded", None, batches={"size": 8, "count": 4})  # the README run: 16 passages
    summary = run_recipe(recipe, tmp_path / "store")
    rows = _published(tmp_path / "store", "grounded", summary)
    for row in rows:
        source = json.loads(row["seed"])["source"]
        assert source in row["prompt"]
        assert all(n in source for n in re.findall(r"\d+", row["text"]))  # no invented number


def recheck_in_sandbox(rows: list[dict], folder: Path) -> None:
    """The independent re-check of published code rows: each row's last python block with its
    seed's tests, run again in the sandbox, outside the verifier."""
    for row in rows:
        seed = json.loads(row["seed"])
        code = last_python_block(row["text"])
        assert code is not None, row["text"]
        work = folder / f"recheck-{row['id'][:12]}"
        work.mkdir()
        done = sandboxed_python(code + "\n\n" + seed["tests"] + "\n", work)
        assert done.returncode == 0, (row["text"], done.stderr[-500:])
