"""What the Prefect UI shows for a run, read back from the real Prefect API: run name with the
version, tags, the progress artifact at 100%, the markdown report and the rejection table."""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import pytest
from prefect.client.orchestration import get_client

from tests.conftest import make_recipe

pytestmark = pytest.mark.usefixtures("prefect_api_url", "ray_cluster")


def test_run_page_shows_name_tags_progress_report_and_rejections(tmp_path, prefect_api_url):
    from flows.factory import factory_flow

    suite = json.loads(make_recipe(tmp_path).with_name("suite.json").read_text())
    suite["expectations"].append({"type": "expect_column_values_to_not_match_regex",
                                  "kwargs": {"column": "prompt", "regex": "FORBIDDEN"}})
    recipe = make_recipe(tmp_path, name="ui_demo", suite=suite, grading__method="logprobs",
                         topics=["why the sky is blue", "how tides work", "how bees talk", "why bread rises",
                                 "FORBIDDEN a", "FORBIDDEN b", "FORBIDDEN c", "FORBIDDEN d"])
    state = factory_flow(recipe_path=str(recipe), store=str(tmp_path / "store"), return_state=True)
    summary = state.result()

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    # the artifacts as the UI asks for them (prefect 3.8's client sends nulls its server rejects)
    response = httpx.post(f"{prefect_api_url}/artifacts/filter", json={
        "artifacts": {"flow_run_id": {"any_": [str(run.id)]}}, "limit": 50, "offset": 0, "sort": "CREATED_DESC"})
    response.raise_for_status()
    artifacts = [SimpleNamespace(**a) for a in response.json()]
    assert run.name == "ui_demo-v1"
    assert {"synthfactory", "recipe:ui_demo", "engine:llamacpp"} <= set(run.tags)
    by_type = {a.type: a for a in artifacts}
    assert by_type["progress"].data == 100.0
    report = by_type["markdown"].data
    assert "# ui_demo version 1" in report
    assert f"| {summary['generated']} | {summary['accepted']} | {summary['rejected']} | {summary['quarantined']} |" in report
    assert "expect_column_values_to_not_match_regex(prompt)" in report
    table = json.loads(by_type["table"].data) if isinstance(by_type["table"].data, str) else by_type["table"].data
    assert table[0]["kind"] == "quarantined batch" and "not_match_regex" in table[0]["detail"]
    assert by_type["markdown"].key == "ui-demo-report"
