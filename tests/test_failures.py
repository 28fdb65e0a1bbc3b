"""What a user sees when a run cannot work: one line, the cause, the right exit code, no version.

Real components throughout: the `synthfactory` CLI as a user runs it, the session's Prefect
server, one local Ray cluster for the module, llama.cpp on the bundled model (and a copy of it
that makes llama.cpp abort), plain sockets and an HTTP server standing in for broken endpoints.
"""

from __future__ import annotations

import json
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from synthfactory.engines.llamacpp import resolve_model_path
from synthfactory.store import DatasetStore
from tests.conftest import TOPICS, cli_command, cli_env, free_port, make_recipe

pytestmark = pytest.mark.usefixtures("prefect_api_url", "ray_cluster")


def aborting_model(folder: Path) -> Path:
    """A copy of the bundled GGUF with `llama.block_count` set to 0: llama.cpp's loader fails
    `GGML_ASSERT(hparams.n_layer_all > 0 ...)` and calls abort() (SIGABRT), killing its process."""
    data = bytearray(resolve_model_path("smollm2-135m-instruct").read_bytes())
    key = b"llama.block_count"
    at = data.index(struct.pack("<Q", len(key)) + key) + 8 + len(key)
    kind, value = struct.unpack_from("<II", data, at)
    assert (kind, value) == (4, 30), "the bundled model's header changed"  # uint32, 30 layers
    struct.pack_into("<I", data, at + 4, 0)
    path = folder / "aborts.gguf"
    path.write_bytes(bytes(data))
    return path


def run_cli(recipe: Path, store: Path, env: dict[str, str],
            timeout: float = 240) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run(cli_command("run", str(recipe), "--store", str(store)), env=env, capture_output=True,
                          text=True, timeout=timeout)
    return done, time.monotonic() - started


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr[-4000:]
    assert lines[0].startswith("synthfactory: error: "), lines[0]
    assert "Traceback" not in stderr
    return lines[0]


def test_an_engine_that_crashes_stops_the_run_with_one_line(tmp_path, prefect_api_url, ray_cluster):
    recipe = make_recipe(tmp_path, generation__model=str(aborting_model(tmp_path)), grading__method="logprobs")
    store = tmp_path / "store"
    done, seconds = run_cli(recipe, store, cli_env(prefect_api_url, ray_cluster), timeout=120)
    line = one_error_line(done.stderr)
    assert done.returncode == 1, done.stderr
    assert "engine llamacpp" in line and "aborts.gguf" in line and "SIGABRT" in line, line
    assert "while loading the model" in line and "worker log: /" in line, line
    assert DatasetStore(store / "tiny").versions() == []  # nothing published, nothing counted as data
    print(f"crash reported {seconds:.1f}s after the command started")


def test_every_user_error_is_one_line_with_exit_2(tmp_path, prefect_api_url, ray_cluster):
    env = cli_env(prefect_api_url, ray_cluster)
    cases = {
        "unknown key": ({"generation__temperatur": 0.3}, "generation.temperatur"),
        "missing model": ({"generation__model": str(tmp_path / "nowhere.gguf")}, "generation.model"),
        "vllm on cuda without a GPU": ({"generation__engine": "vllm", "generation__options": {"device": "cuda"}},
                                       "GPUs"),
        "vllm with a Hub model not cached": ({"generation__engine": "vllm",
                                              "generation__model": "HuggingFaceTB/SmolLM2-135M"},
                                             "local Hugging Face cache"),
    }
    for name, (overrides, expected) in cases.items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        done, _ = run_cli(make_recipe(folder, **overrides), folder / "store", env)
        line = one_error_line(done.stderr)
        assert done.returncode == 2, (name, done.stderr)
        assert expected in line, (name, line)
    missing = subprocess.run(cli_command("run", str(tmp_path / "no-such.yaml")), env=env, capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode == 2 and "recipe file not found" in one_error_line(missing.stderr)


class _Crashing(BaseHTTPRequestHandler):
    """An OpenAI-compatible server whose model crashes on every request: /models answers, every
    completion is a 500 (as llama.cpp servers did on the AMX CPU)."""

    def do_GET(self):  # http.server's naming
        body = json.dumps({"data": [{"id": "smollm2-135m-instruct"}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(500)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_endpoints_that_are_down_stop_the_run_instead_of_making_error_rows(tmp_path, prefect_api_url, ray_cluster):
    env = cli_env(prefect_api_url, ray_cluster)
    options = {"max_retries": 2, "timeout_s": 10, "max_concurrency": 2}
    # two endpoints that refuse connections
    refused = [f"http://127.0.0.1:{free_port()}/v1", f"http://127.0.0.1:{free_port()}/v1"]
    folder = tmp_path / "refused"
    folder.mkdir()
    recipe = make_recipe(folder, generation__engine="openai",
                         generation__options={"base_urls": refused, **options}, grading__method="logprobs")
    done, _ = run_cli(recipe, folder / "store", env)
    line = one_error_line(done.stderr)
    assert done.returncode == 1 and "engine openai" in line and "ConnectError" in line, line
    assert all(url in line for url in refused), line
    assert DatasetStore(folder / "store" / "tiny").versions() == []

    # two endpoints that answer /models but fail every completion (a crashed model behind a live server)
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Crashing) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        folder = tmp_path / "crashing"
        folder.mkdir()
        urls = [f"http://127.0.0.1:{s.server_address[1]}/v1" for s in servers]
        recipe = make_recipe(folder, generation__engine="openai",
                             generation__options={"base_urls": urls, **options}, grading__method="logprobs")
        done, _ = run_cli(recipe, folder / "store", env)
    finally:
        for server in servers:
            server.shutdown()
    line = one_error_line(done.stderr)
    assert done.returncode == 1 and "engine openai" in line and "HTTP 500" in line, line
    dataset = DatasetStore(folder / "store" / "tiny")
    assert dataset.versions() == []
    assert not any("engine_error" in r["reason"] for r in dataset.read_quarantine().to_pylist())


def test_a_run_in_which_nothing_passes_publishes_no_version(tmp_path, prefect_api_url, ray_cluster):
    """The default judge (`json`) end to end, with a threshold no row reaches: exit 1, one line with
    the count and the top reasons, no version, every generated row kept in the quarantine."""
    recipe = make_recipe(tmp_path, topics=TOPICS[:6], batches__count=None, batches__size=3,
                         grading__method="json", grading__threshold=1.0, grading__max_tokens=48)
    store = tmp_path / "store"
    done, _ = run_cli(recipe, store, cli_env(prefect_api_url, ray_cluster))
    line = one_error_line(done.stderr)
    assert done.returncode == 1, done.stderr
    assert "0 of 6 generated rows passed" in line and "publish.min_rows (1)" in line, line
    assert "below_threshold" in line or "judge_unparseable" in line or "near_duplicate" in line, line
    dataset = DatasetStore(store / "tiny")
    assert dataset.versions() == []
    kept = [r for r in dataset.read_quarantine().to_pylist() if r["stage"] != "seeds"]
    assert len(kept) == 6  # generated = accepted (0) + rejected + quarantined
    graded = [json.loads(r["row"]) for r in kept if r["reason"].startswith("below_threshold")]
    assert all(set(json.loads(r["scores"])) == {"accuracy", "clarity"} for r in graded)  # the json judge graded


def test_bad_seeds_are_quarantined_before_any_engine_time_and_the_last_batch_publishes(tmp_path):
    """An empty template variable, seeds that render the same prompt (other id, case, spacing,
    unused fields), a seed quoting a benchmark, and 9 good seeds in batches of 4: the trailing
    seed joins the second batch, whose rows publish; counts reconcile."""
    from flows.factory import factory_flow

    benchmark = "a train leaves the station at noon travelling at sixty miles per hour towards the coast"
    (tmp_path / "bench.txt").write_text(benchmark + "\n")
    rows = [{"topic": t} for t in TOPICS[:9]] + [
        {"topic": " \t "},
        {"id": "other-id", "topic": "  WHY the sky   is BLUE "},
        {"topic": "How a binary search works", "unused": 3},
        {"topic": f"the puzzle where {benchmark}"},
    ]
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = make_recipe(tmp_path, batches__count=None, batches__size=4, grading__method="logprobs",
                         seeds__path="seeds.jsonl", quality__decontamination={
                             "benchmarks": [{"name": "trains", "path": "bench.txt"}]})
    summary = factory_flow(recipe_path=str(recipe), store=str(tmp_path / "store"))

    assert summary["generated"] == 9 and summary["batches"] == 2  # 4 + (4 + the trailing 1)
    assert summary["generated"] == summary["accepted"] + summary["rejected"] + summary["quarantined"]
    assert summary["seeds_quarantined"] == 4
    dataset = DatasetStore(tmp_path / "store" / "tiny")
    seeds = sorted(r["reason"].split(" ")[0] for r in dataset.read_quarantine().to_pylist() if r["stage"] == "seeds")
    assert seeds == ["contaminated:trains", "duplicate_seed:", "duplicate_seed:", "empty_field:"]
    [version] = dataset.versions()
    assert list(version.metadata.gate.outcomes.values()) == ["passed", "passed"]
    assert {r["batch_index"] for r in dataset.read().to_pylist()} == {0, 1}  # the last batch published
    prompts = " ".join(r["prompt"] for r in dataset.read().to_pylist())
    assert "train leaves the station" not in prompts
