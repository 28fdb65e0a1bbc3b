"""Decontamination: word n-gram overlap (default 13-gram) against benchmark files a recipe names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synthfactory.errors import RecipeError
from synthfactory.inputs.readers import read_texts
from synthfactory.quality.text import words


@dataclass
class Benchmark:
    name: str
    grams: set[int]


class Decontaminator:
    """Every benchmark's n-grams, hashed into a set; a row sharing any one is contaminated."""

    def __init__(self, benchmarks: list[tuple[str, Path]], n: int = 13) -> None:
        self.n = n
        self.benchmarks = []
        for name, path in benchmarks:
            if not path.exists():
                raise RecipeError(f"quality.decontamination.benchmarks: no such file: {path}")
            texts = read_texts(path, None, f"quality.decontamination.benchmarks[{name}]")  # a bad line stops the run
            grams = {hash(g) for text in texts for g in _grams(words(text), n)}
            self.benchmarks.append(Benchmark(name, grams))

    def check(self, text: str) -> str | None:
        """The name of the first benchmark this text overlaps with, or None."""
        grams = {hash(g) for g in _grams(words(text), self.n)}
        for bench in self.benchmarks:
            if not grams.isdisjoint(bench.grams):
                return bench.name
        return None


def _grams(tokens: list[str], n: int):
    return (tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
