"""Label Studio round trip: the sample as Label Studio import tasks, its JSON export back as labels.

Import format: a JSON list of `{"data": {...}}` tasks; the labelling config (XML, pasted into the
project's Labeling Interface) shows `$prompt` and `$response` with Choices good/bad and a TextArea
note. Export format (Label Studio's JSON export): the tasks with `"annotations": [{"result":
[{"from_name", "to_name", "type": "choices", "value": {"choices": [...]}}, {"type": "textarea",
"value": {"text": [...]}}], "completed_by": ..., "was_cancelled": ...}]`. The judge score is not in
the tasks (it would anchor the labeller); the import reads it back from the dataset.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthfactory.errors import UserError
from synthfactory.labels.sample import LabelItem

CHOICES_NAME = "label"
NOTE_NAME = "note"
LABELLING_CONFIG = """<View>
  <Header value="$rubric" size="6"/>
  <Header value="Prompt"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="Response"/>
  <Text name="response" value="$response"/>
  <Choices name="label" toName="response" choice="single" showInline="true" required="true">
    <Choice value="good" hotkey="g"/>
    <Choice value="bad" hotkey="b"/>
  </Choices>
  <TextArea name="note" toName="response" rows="2" placeholder="note (optional)"/>
</View>
"""


def task_text(item: LabelItem) -> tuple[str, str]:
    """(prompt, response) as plain text for Label Studio's Text tags, whatever the method."""
    display = item.display
    kind = display.get("kind")
    if kind == "chat":
        turns = display.get("turns") or []
        return "\n\n".join(f"{t['role']}: {t['content']}" for t in turns[:-1]), (turns[-1]["content"] if turns else "")
    if kind == "preference":
        return (display.get("prompt", ""),
                f"CHOSEN:\n{display.get('chosen', '')}\n\nREJECTED:\n{display.get('rejected', '')}")
    if kind == "fields":
        fields = display.get("fields") or {}
        return display.get("prompt", ""), "\n".join(f"{name}: {value}" for name, value in fields.items())
    return display.get("prompt", item.prompt), display.get("response", item.text)


def export_tasks(items: list[LabelItem], rubric: list[dict[str, str]], path: Path) -> Path:
    """Write the tasks to `path` and the labelling config beside it (`path` + `.xml`); returns the
    config's path."""
    rubric_line = "Rubric: " + ("; ".join(f"{c['name']}: {c['description']}" for c in rubric) or "not recorded")
    tasks = []
    for item in items:
        prompt, response = task_text(item)
        tasks.append({"data": {"row_id": item.row_id, "version": item.version, "method": item.method,
                               "prompt": prompt, "response": response, "rubric": rubric_line}})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
        config = path.with_name(path.name + ".xml")
        config.write_text(LABELLING_CONFIG, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--export-label-studio {path}: cannot write ({exc.strerror})") from None
    return config


def _labeller(annotation: dict[str, Any]) -> str | None:
    """Label Studio's `completed_by`: a user id, or (newer exports) an object with email/id."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("username") or who.get("id")
    return None if who in (None, "") else f"label-studio:{who}"


def _annotation_label(annotation: dict[str, Any]) -> tuple[str, str | None]:
    """(label, note) of one annotation; ValueError when it holds no good/bad choice."""
    if annotation.get("was_cancelled"):
        return "skip", None
    result = annotation.get("result")
    if not isinstance(result, list):
        raise ValueError("annotation has no result list")
    label, note = None, None
    for region in result:
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            raise ValueError("a result entry is not an object with a value")
        value, kind = region["value"], region.get("type")
        if kind == "choices" or region.get("from_name") == CHOICES_NAME:
            choices = value.get("choices")
            if not isinstance(choices, list) or len(choices) != 1 or choices[0] not in ("good", "bad"):
                raise ValueError(f"choices must be one of good/bad, got {choices!r}")
            label = choices[0]
        elif kind == "textarea" or region.get("from_name") == NOTE_NAME:
            texts = value.get("text")
            if isinstance(texts, str):
                texts = [texts]
            note = "\n".join(str(t) for t in texts or []).strip() or None
    if label is None:
        raise ValueError("annotation has no good/bad choice")
    return label, note


@dataclass
class ImportResult:
    """What an import read: the labels, the tasks nobody annotated, one line per unreadable task."""

    labels: list[dict[str, Any]] = field(default_factory=list)
    unannotated: int = 0
    problems: list[str] = field(default_factory=list)


def import_annotations(path: Path, lookup: Callable[[str, int | None], LabelItem | None],
                       who: str | None) -> ImportResult:
    """Labels from a Label Studio JSON export. `lookup(row_id, version)` finds the dataset row a task
    names (its score and table come from there); `who` overrides the annotators Label Studio names.
    A task that cannot be read (malformed, unknown row, no good/bad choice) is a problem line."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"--import-label-studio {path}: cannot read ({exc.strerror})") from None
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested deeper than any export
        raise UserError(f"--import-label-studio {path}: not JSON ({exc}); export the project as JSON") from None
    if not isinstance(tasks, list):
        raise UserError(f"--import-label-studio {path}: expected a list of tasks (Label Studio's JSON export)")
    result = ImportResult()
    for index, task in enumerate(tasks):
        name = task.get("id") if isinstance(task, dict) and isinstance(task.get("id"), (int, str)) else f"#{index}"
        where = f"task {name}"
        try:
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                raise ValueError("not an object with data")
            data = task["data"]
            row_id = data.get("row_id")
            where = f"task {name} (row {row_id})" if row_id else where
            if not row_id:
                raise ValueError("no data.row_id (was it exported by synthfactory label?)")
            version = data.get("version")
            item = lookup(str(row_id), version if isinstance(version, int) and not isinstance(version, bool) else None)
            if item is None:
                raise ValueError("no such row in this dataset" + (f" version {version}" if version is not None else ""))
            annotations = task.get("annotations", [])
            if not isinstance(annotations, list):
                raise ValueError("annotations is not a list")
            if not annotations:
                result.unannotated += 1
                continue
            found = []
            for annotation in annotations:
                if not isinstance(annotation, dict):
                    raise ValueError("an annotation is not an object")
                label, note = _annotation_label(annotation)
                found.append(item.label_record(label, note, who or _labeller(annotation) or "label-studio"))
            result.labels.extend(found)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            result.problems.append(f"{where}: {exc}")
    return result
