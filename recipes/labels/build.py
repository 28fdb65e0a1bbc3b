"""Build `quickstart.jsonl`, the labelled set `synthfactory calibrate` reads for the quickstart task.

Good rows are the hand-written answers in `quickstart_good.yaml`. Bad rows are made from good ones
by six corruptions, so every label holds by construction (no model decides a label):

- off_topic: the answer written for a topic of another domain (physics answer to a history prompt).
- different_question: the answer written for another topic of the same domain (close, but not
  what was asked).
- truncated: the answer cut mid-sentence, between 35% and 65% of its words, no closing stop.
- changed_fact: one number or name swapped for a wrong one (the `fact` pair written by hand).
- repetition: the first sentence, then the second sentence four times over.
- refusal: a refusal in place of the answer (half of them name the topic).

Corruption k (0..5) takes the good rows k*20 .. k*20+19 (mod the number of good rows), so each
kind has 20 rows and rows are spread over every domain. Every row is `origin: constructed`: no
model wrote it, so `calibrate` reports what it measures here apart from labelled real outputs.
Deterministic: run it again and the file is the same byte for byte (`python recipes/labels/build.py`).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import yaml

HERE = Path(__file__).parent
TEMPLATE = "Explain {topic} to a curious high-school student in three or four sentences."
KINDS = ("off_topic", "truncated", "changed_fact", "repetition", "refusal", "different_question")
PER_KIND = 20
REFUSALS = (
    "I'm sorry, but I can't help with that request.",
    "I'm sorry, but I can't explain {topic}. Is there something else I can help you with?",
    "As an AI language model, I am not able to provide explanations on this subject.",
    "I cannot answer questions about {topic}. Please consult a teacher or a textbook instead.",
    "Unfortunately I am unable to assist with this. Let me know if you have any other questions.",
    "I'm not able to explain {topic} right now, sorry.",
)


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def corrupt(kind: str, i: int, good: list[dict]) -> str:
    row = good[i]
    text = row["text"]
    if kind in ("off_topic", "different_question"):
        same = kind == "different_question"
        for step in range(1, len(good)):
            other = good[(i + 37 * step) % len(good)]
            if (other["domain"] == row["domain"]) == same and other["topic"] != row["topic"]:
                return other["text"]
        raise ValueError(f"no row to swap with for {row['topic']}")
    if kind == "truncated":
        words = text.split()
        rng = random.Random(i)
        cut = rng.randint(int(len(words) * 0.35), int(len(words) * 0.65))
        while cut > 1 and words[cut - 1][-1] in ".!?,;:":  # never end on a clause or sentence end
            cut -= 1
        return " ".join(words[:cut])
    if kind == "changed_fact":
        old, new = row["fact"]
        assert text.count(old) == 1, row["topic"]
        return text.replace(old, new)
    if kind == "repetition":
        parts = sentences(text)
        return " ".join([parts[0]] + [parts[1]] * 4)
    if kind == "refusal":
        return REFUSALS[i % len(REFUSALS)].format(topic=row["topic"])
    raise ValueError(kind)


def build() -> list[dict]:
    good = yaml.safe_load((HERE / "quickstart_good.yaml").read_text())
    for row in good:
        row["text"] = " ".join(row["text"].split())
    rows = [{"prompt": TEMPLATE.format(topic=r["topic"]), "text": r["text"], "label": "good", "kind": "good",
             "topic": r["topic"], "domain": r["domain"], "origin": "constructed"} for r in good]
    for k, kind in enumerate(KINDS):
        for j in range(PER_KIND):
            i = (k * PER_KIND + j) % len(good)
            rows.append({"prompt": TEMPLATE.format(topic=good[i]["topic"]), "text": corrupt(kind, i, good),
                         "label": "bad", "kind": kind, "topic": good[i]["topic"], "domain": good[i]["domain"],
                         "origin": "constructed"})
    for row in rows:
        row["id"] = hashlib.sha256(f"{row['prompt']}\x00{row['text']}".encode()).hexdigest()[:16]
    return rows


def main() -> None:
    rows = build()
    with open(HERE / "quickstart.jsonl", "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows: {sum(r['label'] == 'good' for r in rows)} good, "
          f"{sum(r['label'] == 'bad' for r in rows)} bad")


if __name__ == "__main__":
    main()
