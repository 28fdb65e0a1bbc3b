"""`synthfactory label`: the labels table, the stratified sample, Label Studio's round trip, the
server, and the page labelled with the keyboard in a real headless Chromium."""

from __future__ import annotations

import argparse
import json
import select
import shutil
import subprocess
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from synthfactory.errors import UserError
from synthfactory.labels.command import label_command
from synthfactory.labels.labelstudio import _annotation_label, import_annotations
from synthfactory.labels.sample import candidates, describe_row, draw_sample
from synthfactory.labels.table import LABELS_SCHEMA, append_labels, labels_uri, read_all_labels, read_labels
from synthfactory.model.lineage import ROW_SCHEMA, row_id_for
from synthfactory.model.metadata import VersionMetadata
from synthfactory.store import DatasetStore

from .conftest import cli_command

RUBRIC = [{"name": "accuracy", "description": "The facts it states are correct."}]
THRESHOLD = 0.5


def _row(version: int, index: int, score: float | None, source: str = "synthetic") -> dict:
    prompt = f"Explain topic {index} in two sentences."
    text = f"Answer {index} of version {version}: <b>not bold</b> & <script>alert({index})</script>."
    return {"id": row_id_for(prompt, text), "seed_id": f"s{index}", "source": source, "generation_depth": 1,
            "prompt": prompt, "text": text, "score": score, "scores": None, "run_id": f"run{version}",
            "batch_id": "b1", "version": version, "batch_index": 0,
            "created_at": datetime.now(timezone.utc)}


def _publish(store: DatasetStore, version: int, published: list[dict], quarantined: list[dict]) -> None:
    meta = VersionMetadata(version=version, run_id=f"run{version}", dataset="tiny", method="text",
                           recipe={"name": "tiny", "grading": {"rubric": RUBRIC, "threshold": THRESHOLD}})
    store.publish(published, meta, ROW_SCHEMA)
    records = [{"batch_id": "b1", "stage": "filter", "status": "rejected", "reason": "below_threshold",
                "location": r["id"], "row": json.dumps(r, default=str), "validation": None} for r in quarantined]
    records.append({"batch_id": None, "stage": "seeds", "status": "quarantined", "reason": "empty",
                    "location": "seeds.txt:3", "row": "", "validation": None})  # a seed, not an output
    store.quarantine(f"run{version}", version, records)


@pytest.fixture
def dataset(tmp_path: Path) -> DatasetStore:
    """A published dataset of two versions: v1 with 20 rows scored 0.5-1 published and 12 rejected
    below the threshold (4 with no score), a real row mixed in; v2 with 5 rows."""
    store = DatasetStore(tmp_path / "store" / "tiny")
    published = [_row(1, i, 0.5 + i / 40) for i in range(20)] + [_row(1, 99, None, source="real")]
    rejected = [_row(1, 100 + i, i / 20) for i in range(8)] + [_row(1, 200 + i, None) for i in range(4)]
    _publish(store, 1, published, rejected)
    _publish(store, 2, [_row(2, i, 0.9) for i in range(5)], [])
    return store


def _args(store: DatasetStore, **given) -> argparse.Namespace:
    values = {"dataset": store.uri, "version": None, "rows": 50, "who": "ann", "port": 0,
              "export_label_studio": None, "import_label_studio": None, "json": False, **given}
    return argparse.Namespace(**values)


def _label_for(item, label: str, note: str | None = None, who: str = "ann") -> dict:
    return item.label_record(label, note, who)


# --- the labels table ------------------------------------------------------------------------


def test_labels_table_keeps_every_label_and_reads_the_latest_per_row_and_labeller(dataset):
    items = candidates(dataset, 1, dataset.versions()[0].metadata)
    before = [(v.version, v.delta_version) for v in dataset.versions()]
    append_labels(dataset.uri, [_label_for(items[0], "good"), _label_for(items[1], "skip")])
    append_labels(dataset.uri, [_label_for(items[0], "bad", "changed my mind"), _label_for(items[0], "good", who="bo")])

    from deltalake import DeltaTable

    table = DeltaTable(labels_uri(dataset.uri)).to_pyarrow_table()
    assert table.schema.equals(LABELS_SCHEMA)
    assert table.num_rows == 4  # append-only: the changed mind is a new row
    latest = {(r["row_id"], r["labeller"]): r for r in read_labels(dataset.uri)}
    assert len(latest) == 3
    assert latest[(items[0].row_id, "ann")]["label"] == "bad"
    assert latest[(items[0].row_id, "ann")]["note"] == "changed my mind"
    assert latest[(items[0].row_id, "bo")]["label"] == "good"
    assert latest[(items[1].row_id, "ann")]["label"] == "skip"  # returned; readers drop skips
    row = latest[(items[0].row_id, "ann")]
    assert (row["version"], row["source"], row["method"]) == (1, "real", "text")
    assert row["score"] == items[0].score and row["text"] == items[0].text and row["prompt"] == items[0].prompt
    # labels never make a dataset version, and the dataset's readers do not see them
    assert [(v.version, v.delta_version) for v in dataset.versions()] == before
    assert dataset.read(1).num_rows == 21


def test_labels_table_loses_no_label_when_two_writers_append_at_once(dataset):
    items = candidates(dataset, 1, dataset.versions()[0].metadata)

    def write(who: str) -> None:
        for item in items[:8]:
            append_labels(dataset.uri, [_label_for(item, "good", who=who)])

    threads = [threading.Thread(target=write, args=(who,)) for who in ("ann", "bo")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(read_all_labels(dataset.uri)) == 16
    assert len(read_labels(dataset.uri)) == 16


def test_a_label_that_breaks_the_contract_is_refused(dataset):
    item = candidates(dataset, 1, dataset.versions()[0].metadata)[0]
    with pytest.raises(ValueError, match="label must be one of good/bad/skip"):
        append_labels(dataset.uri, [_label_for(item, "maybe")])
    assert read_all_labels(dataset.uri) == []


# --- the sample ------------------------------------------------------------------------------


def test_sample_draws_published_and_quarantined_rows_over_the_whole_score_range(dataset):
    pool = candidates(dataset, 1, dataset.versions()[0].metadata)
    assert len(pool) == 32  # 20 published + 12 rejected; the real row and the seed are not outputs
    assert {i.table for i in pool} == {"published", "quarantine"}
    sample = draw_sample(dataset, 1, 11, "ann")
    scores = [i.score for i in sample.items]
    assert len(sample.items) == 11
    assert sum(s is None for s in scores) == 1  # no score: a stratum of its own
    known = [s for s in scores if s is not None]
    assert sum(s < THRESHOLD for s in known) >= 3 and sum(s >= THRESHOLD for s in known) >= 3
    assert any(i.table == "quarantine" for i in sample.items)
    assert sample.rubric == RUBRIC and sample.threshold == THRESHOLD
    # served in hash order, not score order
    assert known != sorted(known)


def test_a_label_keeps_the_pair_the_runs_judges_graded_not_the_request_that_made_the_row(tmp_path):
    """An instruct row is graded as (its instruction, its response): calibrate and a learned judge
    must measure that pair, not the prompt that asked the model to write an instruction."""
    import yaml

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "instruct.yaml"
    generation = yaml.safe_load(recipe.read_text())["generation"]
    store = DatasetStore(tmp_path / "store" / "inst")
    meta = VersionMetadata(version=1, run_id="run1", dataset="inst", method="instruct",
                           recipe={"name": "inst", "generation": generation, "grading": {"threshold": THRESHOLD}})
    store.publish([_row(1, 0, 0.9)], meta, ROW_SCHEMA)
    made = {**_row(1, 1, 0.1), "prompt": "Write one instruction about tides.", "instruction": "Explain tides.",
            "text": "The moon pulls the sea."}
    store.quarantine("run1", 1, [{"batch_id": "b1", "stage": "filter", "status": "rejected",
                                  "reason": "below_threshold", "location": made["id"],
                                  "row": json.dumps(made, default=str), "validation": None}])
    pool = {i.table: i for i in candidates(store, 1, store.versions()[0].metadata)}
    assert (pool["quarantine"].prompt, pool["quarantine"].text) == ("Explain tides.", "The moon pulls the sea.")
    assert pool["published"].prompt == "Explain topic 0 in two sentences."  # no instruction: the row as it is


def test_sample_is_deterministic_per_labeller_grows_with_rows_and_resumes(dataset):
    ids = [i.row_id for i in draw_sample(dataset, 1, 10, "ann").items]
    assert ids == [i.row_id for i in draw_sample(dataset, 1, 10, "ann").items]
    assert ids != [i.row_id for i in draw_sample(dataset, 1, 10, "bo").items]
    assert set(ids) < {i.row_id for i in draw_sample(dataset, 1, 20, "ann").items}
    first = draw_sample(dataset, 1, 10, "ann")
    append_labels(dataset.uri, [_label_for(first.items[0], "good"), _label_for(first.items[1], "bad")])
    again = draw_sample(dataset, 1, 10, "ann")
    assert len(again.labelled) == 2 and [i.row_id for i in again.remaining] == ids[2:]
    assert not draw_sample(dataset, 1, 10, "bo").labelled  # another labeller starts afresh


def test_latest_version_by_default_and_one_line_errors(dataset, tmp_path, capsys):
    assert {i.version for i in draw_sample(dataset, None, 50, "ann").items} == {2}
    with pytest.raises(UserError, match=r"no version 7; versions are \[1, 2\]"):
        label_command(_args(dataset, version=7, export_label_studio=tmp_path / "t.json"))
    with pytest.raises(UserError, match="no published dataset here"):
        label_command(_args(DatasetStore(tmp_path / "store" / "nothing")))


def test_rows_are_shown_by_method():
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    prompt, text, shown = describe_row({"prompt": "hi", "text": "User: hi", "messages": chat}, "conversation")
    assert shown == {"kind": "chat", "turns": chat} and json.loads(prompt) == chat
    pair = {"prompt": "q", "text": "yes",
            "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "yes"}],
            "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "no"}]}
    _, text, shown = describe_row(pair, "preference")
    assert json.loads(text) == {"chosen": "yes", "rejected": "no"}
    assert (shown["kind"], shown["chosen"], shown["rejected"]) == ("preference", "yes", "no")
    _, _, shown = describe_row({"prompt": "p", "text": "{}", "json": '{"name": "x", "age": 3}'}, "structured")
    assert shown == {"kind": "fields", "prompt": "p", "fields": {"name": "x", "age": "3"}}
    _, _, shown = describe_row({"prompt": "p", "text": "r", "instruction": "do x", "response": "r"}, "instruct")
    assert shown == {"kind": "text", "prompt": "do x", "response": "r"}


# --- Label Studio ----------------------------------------------------------------------------


def test_label_studio_export_then_import_round_trips_the_labels(dataset, tmp_path, capsys):
    tasks_file = tmp_path / "ls" / "tasks.json"
    assert label_command(_args(dataset, version=1, rows=6, export_label_studio=tasks_file)) == 0
    tasks = json.loads(tasks_file.read_text())
    config = Path(str(tasks_file) + ".xml").read_text()
    assert len(tasks) == 6 and all(set(t["data"]) >= {"row_id", "prompt", "response"} for t in tasks)
    assert '<Choice value="good"' in config and "<TextArea" in config and 'value="$response"' in config
    assert all("score" not in json.dumps(t["data"]) for t in tasks)  # the score would anchor the labeller
    assert tasks[0]["data"]["rubric"] == "Rubric: accuracy: The facts it states are correct."
    # what Label Studio's JSON export holds once two people labelled the tasks
    filled = {}
    for index, task in enumerate(tasks):
        label = "good" if index % 2 else "bad"
        note = f"note {index}" if index % 3 == 0 else None
        result = [{"id": f"r{index}", "from_name": "label", "to_name": "response", "type": "choices",
                   "value": {"choices": [label]}, "origin": "manual"}]
        if note:
            result.append({"id": f"n{index}", "from_name": "note", "to_name": "response", "type": "textarea",
                           "value": {"text": [note]}, "origin": "manual"})
        who = {"id": 7, "email": "ann@example.org"} if index < 4 else 8
        task.update({"id": 100 + index, "annotations": [{"id": 1000 + index, "result": result, "completed_by": who,
                                                          "was_cancelled": False, "lead_time": 3.2}]})
        filled[task["data"]["row_id"]] = (label, note,
                                          "label-studio:ann@example.org" if index < 4 else "label-studio:8")
    tasks.append({"id": 200, "data": tasks[0]["data"], "annotations": []})  # nobody labelled it
    tasks.append({"id": 201, "data": {"row_id": "nope"}, "annotations": []})
    tasks.append({"id": 202, "data": tasks[1]["data"], "annotations": [{"result": [{"type": "choices",
                  "value": {"choices": ["meh"]}}]}]})
    tasks.append("not a task")
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    capsys.readouterr()
    assert label_command(_args(dataset, who=None, import_label_studio=export)) == 0  # v2 is latest: tasks name v1
    out = capsys.readouterr()
    assert ("imported 6 labels (good 3, bad 3, skip 0)" in out.out
            and "1 tasks unannotated; 3 tasks unreadable" in out.out)
    assert "task 201 (row nope): no such row in this dataset" in out.err and "got ['meh']" in out.err
    got = {r["row_id"]: (r["label"], r["note"], r["labeller"]) for r in read_labels(dataset.uri)}
    assert got == filled
    scores = {i.row_id: i.score for i in candidates(dataset, 1, dataset.versions()[0].metadata)}
    assert all(r["score"] == scores[r["row_id"]] and r["version"] == 1 for r in read_labels(dataset.uri))


def test_label_studio_import_of_a_file_that_is_not_an_export_is_one_line(dataset, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not JSON"):
        label_command(_args(dataset, import_label_studio=bad))
    assert _annotation_label({"was_cancelled": True, "result": []}) == ("skip", None)  # Label Studio's skip
    bad.write_text('{"data": {}}')
    with pytest.raises(UserError, match="expected a list of tasks"):
        import_annotations(bad, lambda row_id, version: None, None)


# --- the server ------------------------------------------------------------------------------


def test_server_hides_the_score_until_the_label_and_appends_each_label(dataset):
    from fastapi.testclient import TestClient

    from synthfactory.labels.server import LabelSession, create_app

    sample = draw_sample(dataset, 1, 3, "ann")
    finished = []
    client = TestClient(create_app(LabelSession(dataset.uri, sample), on_finished=lambda: finished.append(1)),
                        base_url="http://127.0.0.1")
    assert "textContent" in client.get("/").text and "innerHTML" not in client.get("/").text
    state = client.get("/api/state").json()
    assert (state["total"], state["done"], state["rubric"]) == (3, 0, RUBRIC)
    assert "score" not in json.dumps(state) and "outcome" not in json.dumps(state)
    first = state["next"]["row_id"]
    answer = client.post("/api/label", json={"row_id": first, "label": "bad", "note": " too short "}).json()
    assert answer["score"] == sample.items[0].score and answer["done"] == 1 and answer["threshold"] == THRESHOLD
    assert [(r["row_id"], r["label"], r["note"]) for r in read_labels(dataset.uri)] == [(first, "bad", "too short")]
    assert client.post("/api/label", json={"row_id": "nope", "label": "good"}).status_code == 404
    assert client.post("/api/label", json={"row_id": first, "label": "meh"}).status_code == 422
    assert client.get("/api/state", headers={"host": "evil.example"}).status_code == 400
    for _ in range(2):
        client.post("/api/label", json={"row_id": client.get("/api/state").json()["next"]["row_id"], "label": "good"})
    assert client.get("/api/state").json()["next"] is None and finished == [1]


# --- the page in a real browser --------------------------------------------------------------


def _chrome():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Debian chromium and chromium-driver are not installed (make system-deps installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@pytest.mark.timeout(180)
def test_a_person_labels_rows_with_the_keyboard_in_headless_chromium(dataset, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _chrome()
    log = tmp_path / "label.err"
    with open(log, "w") as err:
        server = subprocess.Popen(cli_command("label", dataset.uri, "--version", "1", "--rows", "3", "--who", "tess",
                                              "--json"), stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        ready, _, _ = select.select([server.stdout], [], [], 90)
        started = json.loads(server.stdout.readline() or "{}") if ready else {}
        assert started.get("url", "").startswith("http://127.0.0.1:"), log.read_text()[-3000:]
        browser.get(started["url"])
        wait = WebDriverWait(browser, 60)  # that the page gets there, not how fast: generous on a loaded machine
        wait.until(lambda b: b.find_element(By.ID, "progress").text == "0 of 3 labelled")
        sample = {i.row_id: i for i in draw_sample(dataset, 1, 3, "tess").items}
        body = browser.find_element(By.TAG_NAME, "body")
        shown = []
        for step, keys in enumerate((["g"], ["b"], ["n", "prompt not answered", Keys.ENTER, "g"])):
            wait.until(lambda b, step=step: b.find_element(By.ID, "progress").text == f"{step} of 3 labelled"
                       and not b.find_element(By.ID, "reveal").text)
            page = browser.page_source
            item = next(i for i in sample.values() if i.text in browser.find_element(By.ID, "row").text)
            shown.append(item.row_id)
            assert "<script>alert" not in page.replace("&lt;script&gt;", "")  # row text is text, not markup
            assert "judge score" not in browser.execute_script("return document.body.innerText")
            assert item.score is None or (f"{item.score:.3f}" not in page and repr(item.score) not in page)
            if step == 0:
                browser.save_screenshot(str(tmp_path / "label-page.png"))
            for key in keys:
                (browser.switch_to.active_element if key not in ("g", "b", "n") else body).send_keys(key)
            reveal = wait.until(lambda b: b.find_element(By.ID, "reveal").text)
            expected = "no judge score" if item.score is None else f"judge score {item.score:.3f}"
            assert expected in reveal
        assert server.wait(timeout=60) == 0  # every sampled row labelled: the command ends by itself
        summary = json.loads(server.stdout.read().strip().splitlines()[-1])
        assert (summary["given"], summary["good"], summary["bad"], summary["done"]) == (3, 2, 1, 3)
    finally:
        browser.quit()
        if server.poll() is None:
            server.kill()
    labels = {r["row_id"]: r for r in read_labels(dataset.uri)}
    assert [(labels[i]["label"], labels[i]["note"], labels[i]["labeller"]) for i in shown] == [
        ("good", None, "tess"), ("bad", None, "tess"), ("good", "prompt not answered", "tess")]
    assert all(labels[i]["score"] == sample[i].score for i in shown)


def test_a_small_sample_sees_both_ends_of_the_score_range():
    from synthfactory.labels.sample import LabelItem, stratified

    pool = [LabelItem(f"r{k}", 1, "published", "text", "p", f"t{k}", k / 100, "published") for k in range(100)]
    for labeller in ("ann", "bob", "cy"):
        scores = sorted(i.score for i in stratified(pool, 2, f"tiny|1|{labeller}"))
        assert scores[0] < 0.1 and scores[1] >= 0.9  # the lowest and the highest tenth, not two low ones
    assert {i.row_id for i in stratified(pool, 3, "k")} < {i.row_id for i in stratified(pool, 7, "k")}  # grows
