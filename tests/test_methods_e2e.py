"""Every generation method end to end on real components: the shipped recipe and GX suite, the
bundled model on a local Ray cluster, a Prefect flow, a Delta version, and the method's export
loaded by `datasets.load_dataset` in the layout TRL's trainers read."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import yaml

from synthfactory import load_dataset_version
from synthfactory.model.lineage import LINEAGE_COLUMNS
from synthfactory.publish.hub import export_version
from synthfactory.store import DatasetStore

pytestmark = pytest.mark.usefixtures("prefect_api_url", "ray_cluster")
ROOT = Path(__file__).resolve().parents[1]


def _recipe(tmp_path: Path, name: str, **changes) -> Path:
    """The shipped recipe, small: one batch of 4, short generations, every row past the judge (the
    135M judge is measured elsewhere; here the method, the suite and the layout are under test)."""
    recipe = yaml.safe_load((ROOT / "recipes" / f"{name}.yaml").read_text())
    recipe["seeds"]["path"] = str(ROOT / "recipes" / recipe["seeds"]["path"])
    recipe["validation"]["suite"] = str((ROOT / "recipes" / recipe["validation"]["suite"]).resolve())
    recipe["batches"] = {"size": 4, "count": 1}
    recipe["grading"]["threshold"] = 0.0
    recipe["generation"]["sampling"]["max_tokens"] = min(recipe["generation"]["sampling"]["max_tokens"], 48)
    for dotted, value in changes.items():
        node = recipe
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _run(tmp_path: Path, name: str, **changes):
    from flows.factory import factory_flow

    store = tmp_path / "store"
    summary = factory_flow(recipe_path=str(_recipe(tmp_path, name, **changes)), store=str(store))
    assert summary["version"] == 1 and summary["accepted"] > 0
    size = changes.get("batches", {}).get("size", 4)
    assert summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"] == size
    assert 0.0 < summary["engine_busy_share"] <= 1.0  # the engines' share of the run's engine time, measured
    kept = DatasetStore(store / name).read_quarantine().to_pylist()
    assert len(kept) == summary["rejected"] + summary["quarantined"]  # nothing lost
    ds = load_dataset_version(store / name)
    assert ds.num_rows == summary["accepted"]
    assert set(LINEAGE_COLUMNS) <= set(ds.column_names)
    assert all(r["source"] == "synthetic" and r["generation_depth"] == 1 and r["run_id"] == summary["run_id"]
               for r in ds)
    card = (store / name / "_cards" / "v1" / "README.md").read_text()
    assert f"## Method\n\n`{name}`" in card and "An example row:" in card
    return store / name, ds


def _export(dataset: Path, tmp_path: Path, fmt: str) -> datasets.Dataset:
    folder = export_version(dataset, 1, tmp_path / f"{dataset.name}-{fmt}", fmt=fmt)
    assert f"`{fmt}` layout" in (folder / "README.md").read_text()
    # a cache of its own: datasets keys a local folder's cache by folder name and config, not content
    return datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf-cache"))


def _chat_ok(messages) -> bool:
    roles = [m["role"] for m in messages if m["role"] != "system"]
    return roles[0] == "user" and roles[-1] == "assistant" and all(m["content"] for m in messages)


def test_instruct_with_the_json_judge_publishes_sft_messages(tmp_path):
    # the default judge method (json) end to end, with a published version
    dataset, ds = _run(tmp_path, "instruct", grading__method="json", grading__max_tokens=48,
                       grading__rubric=[{"name": "helpfulness", "description": "It does what the user asked."}])
    for row in ds:
        assert row["messages"][-2:] == [{"role": "user", "content": row["instruction"]},
                                        {"role": "assistant", "content": row["response"]}]
        assert list(json.loads(row["scores"])) == ["helpfulness"] and 0.0 <= row["score"] <= 1.0
    sft = _export(dataset, tmp_path, "messages")
    assert sft.column_names == ["messages"] and sft.num_rows == ds.num_rows
    from trl.data_utils import is_conversational

    assert all(is_conversational(row) and _chat_ok(row["messages"]) for row in sft)
    sharegpt = _export(dataset, tmp_path, "sharegpt")
    assert [t["from"] for t in sharegpt[0]["conversations"]] == ["system", "human", "gpt"]


def test_conversation_publishes_whole_dialogues_with_turns(tmp_path):
    dataset, ds = _run(tmp_path, "conversation", generation__method_options={"turns": 2})
    for row in ds:
        assert row["turns"] == 2 and _chat_ok(row["messages"])
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant", "user", "assistant"]
        assert row["text"].startswith("User: ")  # the screens read every turn
    kept = DatasetStore(dataset).read_quarantine().to_pylist()
    assert all(r["reason"].split(":")[0] in {"ended_early", "repeated_turn", "role_order", "near_duplicate",
                                             "exact_duplicate", "too_short", "repetitive", "wrong_language",
                                             "refusal", "instruction_echo"} for r in kept if r["stage"] == "screen")
    sft = _export(dataset, tmp_path, "jsonl")
    assert sft.num_rows == ds.num_rows and "messages" in sft.column_names


def test_preference_publishes_dpo_pairs_that_trl_reads(tmp_path):
    dataset, ds = _run(tmp_path, "preference", generation__method_options={
        "candidates": 2, "temperatures": [0.3, 1.1], "min_margin": 0.0})
    for row in ds:
        assert row["score_chosen"] > row["score_rejected"] and row["margin"] == pytest.approx(
            row["score_chosen"] - row["score_rejected"], abs=1e-6)
        assert row["chosen"][:-1] == row["rejected"][:-1] and row["chosen"][-1]["role"] == "assistant"
        assert row["chosen"][-1]["content"] in row["candidates"] and len(row["candidates"]) == 2
        assert len(json.loads(row["scores"])["candidates"]) == 2
        # position bias: the logprob judge compared the pair chosen-first and rejected-first
        assert 0.0 <= row["judge_first_slot_p"] <= 1.0 and row["judge_order_consistent"] in (True, False)
    [version] = DatasetStore(dataset).versions()
    bias = version.metadata.judging.bias
    assert bias.pairs_checked >= ds.num_rows and -0.5 <= bias.position_bias <= 0.5  # every graded pair
    assert 0.0 <= bias.order_consistency <= 1.0
    assert "position bias (mean P(first slot wins) - 0.5" in (dataset / "_cards" / "v1" / "README.md").read_text()
    dpo = _export(dataset, tmp_path, "dpo")
    assert dpo.column_names == ["prompt", "chosen", "rejected", "score_chosen", "score_rejected"]
    from trl.data_utils import is_conversational, maybe_extract_prompt

    example = dpo[0]
    assert is_conversational(example) and example["prompt"][-1]["role"] == "user"
    assert maybe_extract_prompt(example) == example  # explicit prompt: TRL takes it as is
    implicit = maybe_extract_prompt({"chosen": ds[0]["chosen"], "rejected": ds[0]["rejected"]})
    assert implicit["prompt"] == ds[0]["chosen"][:-1]  # the table's own rows work in TRL too
    with pytest.raises(Exception, match="preference dataset is pairs"):
        export_version(dataset, 1, tmp_path / "nope", fmt="messages")


def test_structured_rows_validate_and_fields_are_columns(tmp_path):
    dataset, ds = _run(tmp_path, "structured", generation__sampling={"temperature": 0.7, "max_tokens": 160, "seed": 42})
    assert {"json", "topic", "summary", "difficulty"} <= set(ds.column_names)
    assert ds.features["difficulty"].dtype == "int64"
    for row in ds:
        value = json.loads(row["json"])
        assert ((row["topic"], row["summary"], row["difficulty"])
                == (value["topic"], value["summary"], value["difficulty"]))
        assert 1 <= row["difficulty"] <= 5
    kept = DatasetStore(dataset).read_quarantine().to_pylist()
    assert all(r["reason"].startswith("schema_violation: ") for r in kept if r["stage"] == "generate")
    assert _export(dataset, tmp_path, "messages")[0]["messages"][-1]["content"] == ds[0]["json"]


def test_evol_publishes_evolved_pairs_with_their_lineage(tmp_path):
    # the 135M model answers the rewriter more often than it rewrites (screened evol_failed), then
    # repeats the instruction in its answer: a batch of 8, and the echo screen off, so some pass
    dataset, ds = _run(tmp_path, "evol", generation__method_options={"rounds": 1, "rewrite_max_tokens": 48},
                       batches={"size": 8, "count": 1}, quality={"filters": {"instruction_echo": False}})
    kept = DatasetStore(dataset).read_quarantine().to_pylist()
    assert all(r["reason"].startswith("evol_failed: round 1 (") for r in kept if r["stage"] == "generate"
               and r["status"] == "rejected")
    for row in ds:
        steps = json.loads(row["evolution"])
        assert [s["round"] for s in steps] == [1] and row["evol_operations"] == [steps[0]["operation"]]
        assert row["instruction"] == steps[0]["instruction"] != row["prompt"]
        assert row["messages"][-1] == {"role": "assistant", "content": row["response"]}
    assert _export(dataset, tmp_path, "messages").num_rows == ds.num_rows


def test_the_pool_hands_a_calls_requests_to_whichever_llama_cpp_replica_is_free():
    """What the rounds of several batches meet in the pool: llama.cpp says it answers one request
    at a time, so one call's requests spread over both replicas instead of queueing on one; every
    call gets its answers in request order (here: 1..n tokens, each cut at its own max_tokens)."""
    from concurrent.futures import ThreadPoolExecutor

    import ray

    from synthfactory.engines.base import ChatRequest, EngineSpec
    from synthfactory.engines.pool import EnginePool

    spec = EngineSpec("llamacpp", "smollm2-135m-instruct")
    pool = EnginePool([spec])
    try:  # one replica per CPU of the module's 2-CPU cluster
        assert [r["one_request_at_a_time"] for r in pool.replicas] == [True, True]
        story = ({"role": "user", "content": "Write a long story about the sea."},)
        calls = [[ChatRequest(messages=story, max_tokens=n, temperature=0.0, seed=c) for n in range(1, 7)]
                 for c in range(3)]
        with ThreadPoolExecutor(3) as threads:
            answers = list(threads.map(lambda call: pool.chat(spec, call), calls))
        for answer in answers:
            assert [a.completion_tokens for a in answer] == list(range(1, 7)) and not any(a.error for a in answer)
        actors = [actor for group in pool._actors.values() for actor in group]
        before = [ray.get(actor.stats.remote()).requests for actor in actors]
        alone = pool.chat(spec, [ChatRequest(messages=({"role": "user", "content": f"{n}: say a word."},),
                                             max_tokens=1, temperature=0.0) for n in range(8)])  # no shared prefix
        assert len(alone) == 8
        after = [ray.get(actor.stats.remote()).requests for actor in actors]
        assert sum(after) == 3 * 6 + 8 and min(a - b for a, b in zip(after, before, strict=True)) > 0, (before, after)
        stats = pool.stats()
        assert stats.requests == 26 and stats.busy_share is not None and 0.0 < stats.busy_share <= 1.0
    finally:
        pool.shutdown()
