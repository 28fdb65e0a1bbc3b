"""Write recipes/seeds/code.jsonl: small Python functions described by a docstring, with tests.

Run `python recipes/seeds/make_code.py`; its output is committed. The problems, tests and reference
solutions were written for this project (its license, Apache-2.0, covers them): the first 36 here,
the rest in code_problems.py (appended in its order, so the first 36 seeds stay the first). Each
seed holds:

- `name`, `signature` and `description`: what the prompt shows (the function to write);
- `tests`: Python `assert` lines that call the function (the `python_tests` verifier's contract);
- `reference`: a solution that passes them (never shown to the model: the prompt template uses
  signature and description only); `synthfactory seeds check` mutates it to measure the tests;
- `split`: `heldout` for every 4th problem after the first 36 (about a fifth of all), else `train`,
  so a model can be measured on functions no training row came from.

`check()` runs every seed's tests against its reference (they must pass) and against a function
that returns None (they must fail), so a seed whose tests are wrong or toothless never ships
(tests/test_verified_recipes.py calls it); tests/test_seeds.py measures how many near misses of each
reference the tests reject (synthfactory.verify.mutation).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "code.jsonl"
FIRST = 36  # the original problems: the quickstart's `make run` generates from these (max_candidates: 72)
HELDOUT_EVERY = 4  # after the first 36, every 4th problem is held out

# (name, signature, description, reference solution, tests)
PROBLEMS: list[tuple[str, str, str, str, str]] = [
    ("add", "add(a, b)", "Return the sum of a and b.",
     "def add(a, b):\n    return a + b\n",
     "assert add(2, 3) == 5\nassert add(-1, 1) == 0\nassert add(10, 0) == 10"),
    ("square", "square(n)", "Return n multiplied by itself.",
     "def square(n):\n    return n * n\n",
     "assert square(3) == 9\nassert square(-4) == 16\nassert square(0) == 0"),
    ("is_even", "is_even(n)", "Return True if the integer n is even, otherwise False.",
     "def is_even(n):\n    return n % 2 == 0\n",
     "assert is_even(4) is True\nassert is_even(7) is False\nassert is_even(0) is True"),
    ("maximum", "maximum(numbers)", "Return the largest number in the non-empty list numbers.",
     "def maximum(numbers):\n    return max(numbers)\n",
     "assert maximum([1, 5, 3]) == 5\nassert maximum([-2, -7]) == -2\nassert maximum([4]) == 4"),
    ("minimum", "minimum(numbers)", "Return the smallest number in the non-empty list numbers.",
     "def minimum(numbers):\n    return min(numbers)\n",
     "assert minimum([4, 2, 8]) == 2\nassert minimum([-1, -9, 0]) == -9\nassert minimum([6]) == 6"),
    ("total", "total(numbers)", "Return the sum of all numbers in the list numbers (0 for an empty list).",
     "def total(numbers):\n    return sum(numbers)\n",
     "assert total([1, 2, 3]) == 6\nassert total([]) == 0\nassert total([-5, 5, 10]) == 10"),
    ("average", "average(numbers)", "Return the arithmetic mean of the non-empty list numbers.",
     "def average(numbers):\n    return sum(numbers) / len(numbers)\n",
     "assert average([2, 4, 6]) == 4\nassert average([5]) == 5\nassert average([1, 2]) == 1.5"),
    ("reverse_string", "reverse_string(s)", "Return the string s reversed.",
     "def reverse_string(s):\n    return s[::-1]\n",
     "assert reverse_string('abc') == 'cba'\nassert reverse_string('') == ''\n"
     "assert reverse_string('racecar') == 'racecar'"),
    ("is_palindrome", "is_palindrome(s)", "Return True if the string s reads the same forwards and backwards.",
     "def is_palindrome(s):\n    return s == s[::-1]\n",
     "assert is_palindrome('level') is True\nassert is_palindrome('hello') is False\nassert is_palindrome('') is True"),
    ("count_vowels", "count_vowels(s)", "Return how many characters of the string s are vowels (a, e, i, o, u, lower "
                                        "or upper case).",
     "def count_vowels(s):\n    return sum(1 for c in s.lower() if c in 'aeiou')\n",
     "assert count_vowels('hello') == 2\nassert count_vowels('banana') == 3\nassert count_vowels('AEIOU') == 5\n"
     "assert count_vowels('xyz') == 0"),
    ("first_item", "first_item(items)", "Return the first element of the list items, or None if it is empty.",
     "def first_item(items):\n    return items[0] if items else None\n",
     "assert first_item([3, 4]) == 3\nassert first_item([]) is None\nassert first_item(['a']) == 'a'"),
    ("last_item", "last_item(items)", "Return the last element of the list items, or None if it is empty.",
     "def last_item(items):\n    return items[-1] if items else None\n",
     "assert last_item([3, 4]) == 4\nassert last_item([]) is None\nassert last_item(['a', 'b', 'c']) == 'c'"),
    ("count_words", "count_words(text)", "Return the number of words in the string text, where words are separated by "
                                         "whitespace.",
     "def count_words(text):\n    return len(text.split())\n",
     "assert count_words('the cat sat') == 3\nassert count_words('') == 0\nassert count_words('  one   two ') == 2"),
    ("factorial", "factorial(n)", "Return n! for a non-negative integer n (factorial(0) is 1).",
     "def factorial(n):\n    result = 1\n    for k in range(2, n + 1):\n        result *= k\n    return result\n",
     "assert factorial(0) == 1\nassert factorial(1) == 1\nassert factorial(5) == 120"),
    ("fibonacci", "fibonacci(n)", "Return the n-th Fibonacci number, where fibonacci(0) is 0 and fibonacci(1) is 1.",
     "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
     "assert fibonacci(0) == 0\nassert fibonacci(1) == 1\nassert fibonacci(10) == 55"),
    ("celsius_to_fahrenheit", "celsius_to_fahrenheit(c)", "Convert a temperature from degrees Celsius to degrees "
                                                          "Fahrenheit.",
     "def celsius_to_fahrenheit(c):\n    return c * 9 / 5 + 32\n",
     "assert celsius_to_fahrenheit(0) == 32\nassert celsius_to_fahrenheit(100) == 212\n"
     "assert celsius_to_fahrenheit(-40) == -40\n"
     "assert abs(celsius_to_fahrenheit(37) - 98.6) < 1e-9"),
    ("absolute", "absolute(n)", "Return the absolute value of the number n.",
     "def absolute(n):\n    return -n if n < 0 else n\n",
     "assert absolute(-3) == 3\nassert absolute(4) == 4\nassert absolute(0) == 0\n"
     "assert absolute(0.5) == 0.5\nassert absolute(-0.5) == 0.5"),
    ("count_occurrences", "count_occurrences(items, value)", "Return how many times value appears in the list items.",
     "def count_occurrences(items, value):\n    return items.count(value)\n",
     "assert count_occurrences([1, 2, 1, 1], 1) == 3\nassert count_occurrences([], 5) == 0\n"
     "assert count_occurrences(['a', 'b'], 'c') == 0"),
    ("remove_duplicates", "remove_duplicates(items)", "Return a new list with the elements of items in their first "
                                                      "order, each kept once.",
     "def remove_duplicates(items):\n    seen = []\n    for item in items:\n        if item not in seen:\n"
     "            seen.append(item)\n    return seen\n",
     "assert remove_duplicates([3, 1, 3, 2, 1]) == [3, 1, 2]\nassert remove_duplicates([]) == []\n"
     "assert remove_duplicates([9, 8, 9]) == [9, 8]"),
    ("evens", "evens(numbers)", "Return a list of the even numbers in the list numbers, in order.",
     "def evens(numbers):\n    return [n for n in numbers if n % 2 == 0]\n",
     "assert evens([1, 2, 3, 4]) == [2, 4]\nassert evens([2, 2, 3]) == [2, 2]\nassert evens([1, 3]) == []\n"
     "assert evens([0, -2, 5]) == [0, -2]"),
    ("double_all", "double_all(numbers)", "Return a new list with every number in numbers multiplied by 2.",
     "def double_all(numbers):\n    return [2 * n for n in numbers]\n",
     "assert double_all([1, 2, 3]) == [2, 4, 6]\nassert double_all([1, 1]) == [2, 2]\nassert double_all([]) == []\n"
     "assert double_all([-1]) == [-2]"),
    ("to_upper", "to_upper(s)", "Return the string s with every letter in upper case.",
     "def to_upper(s):\n    return s.upper()\n",
     "assert to_upper('hello') == 'HELLO'\nassert to_upper('MiXeD 1') == 'MIXED 1'\nassert to_upper('') == ''"),
    ("capitalize_words", "capitalize_words(text)", "Return text with the first letter of every space-separated word in "
                                                   "upper case and the rest in lower case.",
     "def capitalize_words(text):\n    return ' '.join(w.capitalize() for w in text.split(' '))\n",
     "assert capitalize_words('hello world') == 'Hello World'\nassert capitalize_words('pYTHON') == 'Python'\n"
     "assert capitalize_words('a b c') == 'A B C'"),
    ("is_prime", "is_prime(n)", "Return True if the integer n is a prime number, otherwise False.",
     "def is_prime(n):\n    if n < 2:\n        return False\n    k = 2\n    while k * k <= n:\n        if n % k == 0:\n"
     "            return False\n        k += 1\n    return True\n",
     "assert is_prime(2) is True\nassert is_prime(15) is False\nassert is_prime(13) is True\n"
     "assert is_prime(1) is False\nassert is_prime(9) is False\nassert is_prime(4) is False"),
    ("gcd", "gcd(a, b)", "Return the greatest common divisor of the positive integers a and b.",
     "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n",
     "assert gcd(12, 18) == 6\nassert gcd(7, 3) == 1\nassert gcd(10, 5) == 5"),
    ("sum_of_digits", "sum_of_digits(n)", "Return the sum of the decimal digits of the non-negative integer n.",
     "def sum_of_digits(n):\n    return sum(int(d) for d in str(n))\n",
     "assert sum_of_digits(123) == 6\nassert sum_of_digits(0) == 0\nassert sum_of_digits(9005) == 14"),
    ("count_char", "count_char(s, ch)", "Return how many times the character ch occurs in the string s.",
     "def count_char(s, ch):\n    return s.count(ch)\n",
     "assert count_char('banana', 'a') == 3\nassert count_char('apple', 'z') == 0\nassert count_char('', 'a') == 0"),
    ("repeat_string", "repeat_string(s, n)", "Return the string s repeated n times.",
     "def repeat_string(s, n):\n    return s * n\n",
     "assert repeat_string('ab', 3) == 'ababab'\nassert repeat_string('x', 0) == ''\n"
     "assert repeat_string('', 4) == ''"),
    ("clamp", "clamp(x, low, high)", "Return x limited to the range from low to high: low if x is below it, high if x "
                                     "is above it, else x.",
     "def clamp(x, low, high):\n    return max(low, min(x, high))\n",
     "assert clamp(5, 0, 10) == 5\nassert clamp(-3, 0, 10) == 0\nassert clamp(42, 0, 10) == 10"),
    ("count_positive", "count_positive(numbers)", "Return how many numbers in the list numbers are greater than zero.",
     "def count_positive(numbers):\n    return sum(1 for n in numbers if n > 0)\n",
     "assert count_positive([1, -2, 3]) == 2\nassert count_positive([2, 2, -1, 2]) == 3\n"
     "assert count_positive([]) == 0\nassert count_positive([0, -1]) == 0"),
    ("join_words", "join_words(words)", "Return the strings in the list words joined with a single space between them.",
     "def join_words(words):\n    return ' '.join(words)\n",
     "assert join_words(['a', 'b', 'c']) == 'a b c'\nassert join_words([]) == ''\nassert join_words(['hi']) == 'hi'"),
    ("starts_with_vowel", "starts_with_vowel(word)", "Return True if the string word starts with a vowel (a, e, i, o, "
                                                     "u, any case), otherwise False.",
     "def starts_with_vowel(word):\n    return word[:1].lower() in ('a', 'e', 'i', 'o', 'u')\n",
     "assert starts_with_vowel('apple') is True\nassert starts_with_vowel('Egg') is True\n"
     "assert starts_with_vowel('tree') is False\nassert starts_with_vowel('') is False"),
    ("sort_numbers", "sort_numbers(numbers)", "Return a new list with the numbers of the list numbers in increasing "
                                              "order.",
     "def sort_numbers(numbers):\n    return sorted(numbers)\n",
     "assert sort_numbers([3, 1, 2]) == [1, 2, 3]\nassert sort_numbers([]) == []\n"
     "assert sort_numbers([5, -1, 5]) == [-1, 5, 5]"),
    ("product", "product(numbers)", "Return the product of all numbers in the list numbers (1 for an empty list).",
     "def product(numbers):\n    result = 1\n    for n in numbers:\n        result *= n\n    return result\n",
     "assert product([2, 3, 4]) == 24\nassert product([]) == 1\nassert product([-1, 5]) == -5"),
    ("word_lengths", "word_lengths(words)", "Return a list of the lengths of the strings in the list words.",
     "def word_lengths(words):\n    return [len(w) for w in words]\n",
     "assert word_lengths(['a', 'abc']) == [1, 3]\nassert word_lengths(['ab', 'cd']) == [2, 2]\n"
     "assert word_lengths([]) == []\nassert word_lengths(['', 'hi']) == [0, 2]"),
    ("merge_dicts", "merge_dicts(a, b)", "Return a new dictionary with the keys of a and b; where both have a key, b's "
                                         "value wins.",
     "def merge_dicts(a, b):\n    return {**a, **b}\n",
     "assert merge_dicts({'x': 1}, {'y': 2}) == {'x': 1, 'y': 2}\nassert merge_dicts({'x': 1}, {'x': 3}) == {'x': 3}\n"
     "assert merge_dicts({}, {}) == {}\nassert merge_dicts({'x': 1, 'y': 5}, {'x': 2}) == {'x': 2, 'y': 5}"),
]


def _more_problems() -> list[tuple[str, str, str, str, str]]:
    """code_problems.PROBLEMS, loaded by path (this file runs as a script and is loaded by path too)."""
    spec = importlib.util.spec_from_file_location("code_problems", HERE / "code_problems.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.PROBLEMS)


PROBLEMS += _more_problems()


def split_of(index: int) -> str:
    """`heldout` for every HELDOUT_EVERY-th problem after the first FIRST, else `train` (deterministic)."""
    return "heldout" if index >= FIRST and (index - FIRST) % HELDOUT_EVERY == HELDOUT_EVERY - 1 else "train"


def seeds() -> list[dict[str, str]]:
    return [{"name": name, "signature": signature, "description": description, "tests": tests,
             "reference": reference, "split": split_of(index)}
            for index, (name, signature, description, reference, tests) in enumerate(PROBLEMS)]


def check() -> list[str]:
    """Problems whose tests do not pass on their reference or do pass on a function returning None."""
    bad = []
    for name, _, _, reference, tests in PROBLEMS:
        for code, should_pass in ((reference, True), (f"def {name}(*args, **kwargs):\n    return None\n", False)):
            scope: dict[str, object] = {}
            try:
                exec(compile(code + "\n" + tests, f"<{name}>", "exec"), scope)  # our own code, not a model's
                passed = True
            except AssertionError:
                passed = False
            if passed != should_pass:
                bad.append(f"{name}: tests {'fail on the reference' if should_pass else 'pass on a stub'}")
    return bad


def main() -> None:
    bad = check()
    if bad:
        raise SystemExit("; ".join(bad))
    rows = seeds()
    OUT.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows), encoding="utf-8")
    print(f"wrote {len(rows)} problems to {OUT}")


if __name__ == "__main__":
    main()
