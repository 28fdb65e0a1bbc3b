"""More code seeds for recipes/seeds/make_code.py: small functions with a reference solution and
`assert` tests, written for this project (Apache-2.0, as the project). Grouped by topic; the order
is the seed order (make_code.py appends these after its first 36 problems)."""

from __future__ import annotations

from textwrap import dedent

Problem = tuple[str, str, str, str, str]  # (name, signature, description, reference, tests)


def problem(name: str, signature: str, description: str, reference: str, tests: str) -> Problem:
    """One problem; `reference` and `tests` are written indented in this file and dedented here."""
    return (name, signature, description, dedent(reference).strip("\n") + "\n", dedent(tests).strip())


STRINGS: list[Problem] = [
    problem("count_consonants", "count_consonants(s)",
            "Return how many characters of the string s are English consonants (the letters other than a, e, i, o, u), "
            "in either case.",
            """
            def count_consonants(s):
                return sum(1 for c in s.lower() if c in 'bcdfghjklmnpqrstvwxyz')
            """, """
            assert count_consonants('hello') == 3
            assert count_consonants('AEIOU') == 0
            assert count_consonants('Rhythm') == 6
            assert count_consonants('a1 b2!') == 1
            assert count_consonants('') == 0
            """),
    problem("remove_vowels", "remove_vowels(s)",
            "Return the string s with every vowel (a, e, i, o, u, in either case) removed.",
            """
            def remove_vowels(s):
                return ''.join(c for c in s if c.lower() not in 'aeiou')
            """, """
            assert remove_vowels('hello world') == 'hll wrld'
            assert remove_vowels('AEIOUxyz') == 'xyz'
            assert remove_vowels('') == ''
            assert remove_vowels('bcd') == 'bcd'
            """),
    problem("is_anagram", "is_anagram(a, b)",
            "Return True if the strings a and b use the same letters the same number of times, ignoring case and "
            "spaces, otherwise False.",
            """
            def is_anagram(a, b):
                return sorted(a.replace(' ', '').lower()) == sorted(b.replace(' ', '').lower())
            """, """
            assert is_anagram('listen', 'silent') is True
            assert is_anagram('Dormitory', 'dirty room') is True
            assert is_anagram('abc', 'abd') is False
            assert is_anagram('aab', 'abb') is False
            assert is_anagram('', '') is True
            assert is_anagram('ab', 'abc') is False
            """),
    problem("reverse_words", "reverse_words(text)",
            "Return the whitespace-separated words of text in reverse order, joined by single spaces.",
            """
            def reverse_words(text):
                return ' '.join(reversed(text.split()))
            """, """
            assert reverse_words('one two three') == 'three two one'
            assert reverse_words('  hi  there ') == 'there hi'
            assert reverse_words('') == ''
            assert reverse_words('solo') == 'solo'
            """),
    problem("longest_word", "longest_word(text)",
            "Return the longest whitespace-separated word of text (the first one if several are as long), or '' if "
            "text has no words.",
            """
            def longest_word(text):
                best = ''
                for word in text.split():
                    if len(word) > len(best):
                        best = word
                return best
            """, """
            assert longest_word('a bb ccc dd') == 'ccc'
            assert longest_word('ab cd') == 'ab'
            assert longest_word('') == ''
            assert longest_word('xyz') == 'xyz'
            assert longest_word('hi hello hey') == 'hello'
            """),
    problem("acronym", "acronym(phrase)",
            "Return the first letters of the whitespace-separated words of phrase, in upper case, joined together.",
            """
            def acronym(phrase):
                return ''.join(word[0].upper() for word in phrase.split())
            """, """
            assert acronym('portable network graphics') == 'PNG'
            assert acronym('as soon  as possible') == 'ASAP'
            assert acronym('') == ''
            assert acronym('Hello') == 'H'
            """),
    problem("is_pangram", "is_pangram(text)",
            "Return True if text contains every letter from a to z at least once (in either case), otherwise False.",
            """
            def is_pangram(text):
                return set('abcdefghijklmnopqrstuvwxyz') <= set(text.lower())
            """, """
            assert is_pangram('The quick brown fox jumps over the lazy dog') is True
            assert is_pangram('Hello world') is False
            assert is_pangram('') is False
            assert is_pangram('abcdefghijklmnopqrstuvwxy') is False
            assert is_pangram('ABCDEFGHIJKLMNOPQRSTUVWXYZ') is True
            """),
    problem("char_frequency", "char_frequency(s)",
            "Return a dictionary mapping each character of the string s to how many times it occurs.",
            """
            def char_frequency(s):
                counts = {}
                for c in s:
                    counts[c] = counts.get(c, 0) + 1
                return counts
            """, """
            assert char_frequency('abca') == {'a': 2, 'b': 1, 'c': 1}
            assert char_frequency('') == {}
            assert char_frequency('zz') == {'z': 2}
            assert char_frequency('Aa') == {'A': 1, 'a': 1}
            """),
    problem("most_common_char", "most_common_char(s)",
            "Return the character that occurs most often in the non-empty string s; if several occur equally often, "
            "the one that appears first in s.",
            """
            def most_common_char(s):
                best = s[0]
                for c in s:
                    if s.count(c) > s.count(best):
                        best = c
                return best
            """, """
            assert most_common_char('abbccc') == 'c'
            assert most_common_char('aabb') == 'a'
            assert most_common_char('x') == 'x'
            assert most_common_char('abcb') == 'b'
            assert most_common_char('baab') == 'b'
            """),
    problem("caesar_shift", "caesar_shift(text, k)",
            "Return text with every lower-case letter a-z moved k places forward in the alphabet (wrapping from z to "
            "a; k may be negative); other characters stay as they are.",
            """
            def caesar_shift(text, k):
                out = []
                for c in text:
                    if 'a' <= c <= 'z':
                        out.append(chr((ord(c) - ord('a') + k) % 26 + ord('a')))
                    else:
                        out.append(c)
                return ''.join(out)
            """, """
            assert caesar_shift('abc', 1) == 'bcd'
            assert caesar_shift('xyz', 2) == 'zab'
            assert caesar_shift('hello, world!', 13) == 'uryyb, jbeyq!'
            assert caesar_shift('abc', 0) == 'abc'
            assert caesar_shift('abc', -1) == 'zab'
            assert caesar_shift('ABC z', 1) == 'ABC a'
            assert caesar_shift('a', 26) == 'a'
            """),
    problem("count_substring", "count_substring(text, sub)",
            "Return how many times the non-empty string sub occurs in text, counting occurrences that overlap.",
            """
            def count_substring(text, sub):
                return sum(1 for i in range(len(text)) if text.startswith(sub, i))
            """, """
            assert count_substring('aaaa', 'aa') == 3
            assert count_substring('abcabc', 'abc') == 2
            assert count_substring('abc', 'd') == 0
            assert count_substring('ab', 'abc') == 0
            assert count_substring('aa', 'aa') == 1
            assert count_substring('abab', 'b') == 2
            """),
    problem("compress", "compress(s)",
            "Return the run-length encoding of s: each run of a repeated character becomes the character followed by "
            "the run's length, e.g. 'aaabcc' gives 'a3b1c2'.",
            """
            def compress(s):
                out = []
                i = 0
                while i < len(s):
                    j = i
                    while j < len(s) and s[j] == s[i]:
                        j += 1
                    out.append(s[i] + str(j - i))
                    i = j
                return ''.join(out)
            """, """
            assert compress('aaabcc') == 'a3b1c2'
            assert compress('') == ''
            assert compress('a') == 'a1'
            assert compress('abc') == 'a1b1c1'
            assert compress('zzzzzzzzzzzz') == 'z12'
            assert compress('aabbaa') == 'a2b2a2'
            """),
    problem("is_balanced", "is_balanced(s)",
            "Return True if the brackets (), [] and {} in the string s are balanced and properly nested (other "
            "characters are ignored), otherwise False.",
            """
            def is_balanced(s):
                pairs = {')': '(', ']': '[', '}': '{'}
                stack = []
                for c in s:
                    if c in '([{':
                        stack.append(c)
                    elif c in pairs:
                        if not stack or stack.pop() != pairs[c]:
                            return False
                return not stack
            """, """
            assert is_balanced('([]{})') is True
            assert is_balanced('([)]') is False
            assert is_balanced('((') is False
            assert is_balanced('))') is False
            assert is_balanced('') is True
            assert is_balanced('a(b)c') is True
            assert is_balanced('}') is False
            assert is_balanced('(]') is False
            assert is_balanced('(()') is False
            """),
    problem("snake_to_camel", "snake_to_camel(name)",
            "Convert a snake_case name to camelCase: the first word stays as it is and every later word starts with an "
            "upper-case letter, e.g. 'make_it_work' gives 'makeItWork'.",
            """
            def snake_to_camel(name):
                first, *rest = name.split('_')
                return first + ''.join(word.capitalize() for word in rest)
            """, """
            assert snake_to_camel('hello_world') == 'helloWorld'
            assert snake_to_camel('a_b_c') == 'aBC'
            assert snake_to_camel('single') == 'single'
            assert snake_to_camel('make_it_work') == 'makeItWork'
            """),
    problem("camel_to_snake", "camel_to_snake(name)",
            "Convert a camelCase name to snake_case: put an underscore before every upper-case letter and make it "
            "lower case, e.g. 'helloWorld' gives 'hello_world'.",
            """
            def camel_to_snake(name):
                out = ''
                for c in name:
                    if c.isupper():
                        out += '_' + c.lower()
                    else:
                        out += c
                return out
            """, """
            assert camel_to_snake('helloWorld') == 'hello_world'
            assert camel_to_snake('aBC') == 'a_b_c'
            assert camel_to_snake('simple') == 'simple'
            assert camel_to_snake('') == ''
            assert camel_to_snake('getHTTP') == 'get_h_t_t_p'
            """),
    problem("pad_left", "pad_left(s, width, fill)",
            "Return the string s padded on the left with the character fill up to length width; s is returned "
            "unchanged if it is already at least that long.",
            """
            def pad_left(s, width, fill):
                return fill * (width - len(s)) + s
            """, """
            assert pad_left('7', 3, '0') == '007'
            assert pad_left('abc', 2, '*') == 'abc'
            assert pad_left('', 2, 'x') == 'xx'
            assert pad_left('ab', 2, '-') == 'ab'
            assert pad_left('5', 4, ' ') == '   5'
            """),
    problem("truncate", "truncate(text, n)",
            "Return text unchanged if it has at most n characters; otherwise its first n - 3 characters followed by "
            "'...' (n is at least 3).",
            """
            def truncate(text, n):
                if len(text) <= n:
                    return text
                return text[:n - 3] + '...'
            """, """
            assert truncate('hello', 10) == 'hello'
            assert truncate('hello world', 8) == 'hello...'
            assert truncate('abcdef', 6) == 'abcdef'
            assert truncate('abcdefg', 6) == 'abc...'
            assert truncate('abcd', 3) == '...'
            """),
    problem("count_uppercase", "count_uppercase(s)",
            "Return how many characters of the string s are upper-case letters.",
            """
            def count_uppercase(s):
                return sum(1 for c in s if c.isupper())
            """, """
            assert count_uppercase('Hello World') == 2
            assert count_uppercase('abc') == 0
            assert count_uppercase('ABC') == 3
            assert count_uppercase('') == 0
            """),
    problem("alternate_case", "alternate_case(s)",
            "Return s with the characters at even positions (0, 2, ...) in upper case and those at odd positions in "
            "lower case.",
            """
            def alternate_case(s):
                return ''.join(c.upper() if i % 2 == 0 else c.lower() for i, c in enumerate(s))
            """, """
            assert alternate_case('hello') == 'HeLlO'
            assert alternate_case('ABCD') == 'AbCd'
            assert alternate_case('') == ''
            assert alternate_case('a b') == 'A B'
            assert alternate_case('xyzxyz') == 'XyZxYz'
            """),
    problem("is_palindrome_sentence", "is_palindrome_sentence(text)",
            "Return True if text reads the same forwards and backwards when only its letters and digits are kept and "
            "case is ignored, otherwise False.",
            """
            def is_palindrome_sentence(text):
                kept = [c.lower() for c in text if c.isalnum()]
                return kept == kept[::-1]
            """, """
            assert is_palindrome_sentence('A man, a plan, a canal: Panama') is True
            assert is_palindrome_sentence('race a car') is False
            assert is_palindrome_sentence('') is True
            assert is_palindrome_sentence('No lemon, no melon') is True
            assert is_palindrome_sentence('ab') is False
            assert is_palindrome_sentence('Ab,a') is True
            """),
    problem("first_repeated_char", "first_repeated_char(s)",
            "Return the first character of s that has already appeared earlier in s, or None if no character repeats.",
            """
            def first_repeated_char(s):
                seen = set()
                for c in s:
                    if c in seen:
                        return c
                    seen.add(c)
                return None
            """, """
            assert first_repeated_char('abcba') == 'b'
            assert first_repeated_char('abc') is None
            assert first_repeated_char('') is None
            assert first_repeated_char('aa') == 'a'
            assert first_repeated_char('abcdeafb') == 'a'
            """),
    problem("first_unique_char", "first_unique_char(s)",
            "Return the index of the first character of s that occurs exactly once in s, or -1 if there is none.",
            """
            def first_unique_char(s):
                for i, c in enumerate(s):
                    if s.count(c) == 1:
                        return i
                return -1
            """, """
            assert first_unique_char('leetcode') == 0
            assert first_unique_char('loveleetcode') == 2
            assert first_unique_char('aabb') == -1
            assert first_unique_char('') == -1
            assert first_unique_char('aab') == 2
            assert first_unique_char('z') == 0
            """),
    problem("word_count", "word_count(text)",
            "Return a dictionary mapping each whitespace-separated word of text, in lower case, to how many times it "
            "occurs.",
            """
            def word_count(text):
                counts = {}
                for word in text.lower().split():
                    counts[word] = counts.get(word, 0) + 1
                return counts
            """, """
            assert word_count('the cat the dog') == {'the': 2, 'cat': 1, 'dog': 1}
            assert word_count('') == {}
            assert word_count('A a A') == {'a': 3}
            """),
    problem("initials", "initials(name)",
            "Return the initials of a full name: the upper-case first letter of each whitespace-separated word, each "
            "followed by a dot, e.g. 'ada lovelace' gives 'A.L.'.",
            """
            def initials(name):
                return ''.join(word[0].upper() + '.' for word in name.split())
            """, """
            assert initials('ada lovelace') == 'A.L.'
            assert initials('Grace Brewster Hopper') == 'G.B.H.'
            assert initials('Plato') == 'P.'
            assert initials('') == ''
            """),
    problem("mask", "mask(s, keep)",
            "Return s with every character replaced by '*' except its last keep characters (all of s is kept if keep "
            "is at least its length).",
            """
            def mask(s, keep):
                hidden = max(len(s) - keep, 0)
                return '*' * hidden + s[hidden:]
            """, """
            assert mask('1234567890', 4) == '******7890'
            assert mask('abc', 0) == '***'
            assert mask('ab', 5) == 'ab'
            assert mask('', 2) == ''
            assert mask('abcd', 4) == 'abcd'
            assert mask('abcde', 4) == '*bcde'
            """),
    problem("is_isogram", "is_isogram(word)",
            "Return True if no letter occurs more than once in word, ignoring case, otherwise False.",
            """
            def is_isogram(word):
                return len(set(word.lower())) == len(word)
            """, """
            assert is_isogram('lumberjack') is True
            assert is_isogram('Alpha') is False
            assert is_isogram('') is True
            assert is_isogram('abcA') is False
            assert is_isogram('ab') is True
            """),
    problem("digit_sum_text", "digit_sum_text(s)",
            "Return the sum of the decimal digits 0-9 that appear in the string s (0 if there are none).",
            """
            def digit_sum_text(s):
                return sum(int(c) for c in s if c in '0123456789')
            """, """
            assert digit_sum_text('a1b2c3') == 6
            assert digit_sum_text('abc') == 0
            assert digit_sum_text('909') == 18
            assert digit_sum_text('') == 0
            """),
    problem("collapse_spaces", "collapse_spaces(text)",
            "Return text with every run of whitespace replaced by a single space and no whitespace at either end.",
            """
            def collapse_spaces(text):
                return ' '.join(text.split())
            """, """
            assert collapse_spaces('  a   b  c ') == 'a b c'
            assert collapse_spaces('') == ''
            assert collapse_spaces('abc') == 'abc'
            assert collapse_spaces('   ') == ''
            assert collapse_spaces('x\\t\\ty') == 'x y'
            """),
    problem("rotate_string", "rotate_string(s, k)",
            "Return the string s rotated left by k positions (k is at least 0 and may exceed the length of s), e.g. "
            "rotating 'abcdef' by 2 gives 'cdefab'.",
            """
            def rotate_string(s, k):
                return s[k % len(s):] + s[:k % len(s)] if s else s
            """, """
            assert rotate_string('abcdef', 2) == 'cdefab'
            assert rotate_string('abc', 0) == 'abc'
            assert rotate_string('abc', 3) == 'abc'
            assert rotate_string('abc', 4) == 'bca'
            assert rotate_string('', 5) == ''
            """),
    problem("common_prefix", "common_prefix(words)",
            "Return the longest string that every string in the non-empty list words starts with.",
            """
            def common_prefix(words):
                prefix = ''
                for chars in zip(*words):
                    if len(set(chars)) != 1:
                        break
                    prefix += chars[0]
                return prefix
            """, """
            assert common_prefix(['flower', 'flow', 'flight']) == 'fl'
            assert common_prefix(['dog', 'racecar', 'car']) == ''
            assert common_prefix(['alone']) == 'alone'
            assert common_prefix(['ab', 'abc']) == 'ab'
            assert common_prefix(['', 'a']) == ''
            assert common_prefix(['same', 'same']) == 'same'
            """),
    problem("abbreviate", "abbreviate(word)",
            "Return word unchanged if it has at most 10 letters; otherwise its first letter, the number of letters "
            "between the first and the last, and its last letter, e.g. 'localization' gives 'l10n'.",
            """
            def abbreviate(word):
                if len(word) <= 10:
                    return word
                return word[0] + str(len(word) - 2) + word[-1]
            """, """
            assert abbreviate('word') == 'word'
            assert abbreviate('localization') == 'l10n'
            assert abbreviate('internationalization') == 'i18n'
            assert abbreviate('abcdefghij') == 'abcdefghij'
            assert abbreviate('abcdefghijk') == 'a9k'
            """),
    problem("pig_latin", "pig_latin(word)",
            "Translate a lower-case word to Pig Latin: a word starting with a vowel (a, e, i, o, u) gets 'way' added; "
            "otherwise its leading consonants move to the end, followed by 'ay' "
            "(a word without vowels just gets 'ay').",
            """
            def pig_latin(word):
                if word[0] in 'aeiou':
                    return word + 'way'
                for i, ch in enumerate(word):
                    if ch in 'aeiou':
                        return word[i:] + word[:i] + 'ay'
                return word + 'ay'
            """, """
            assert pig_latin('apple') == 'appleway'
            assert pig_latin('banana') == 'ananabay'
            assert pig_latin('string') == 'ingstray'
            assert pig_latin('rhythm') == 'rhythmay'
            assert pig_latin('eat') == 'eatway'
            assert pig_latin('cheese') == 'eesechay'
            """),
    problem("reverse_each_word", "reverse_each_word(text)",
            "Return text with each space-separated word reversed, keeping the words in order and the spaces as they "
            "are.",
            """
            def reverse_each_word(text):
                return ' '.join(word[::-1] for word in text.split(' '))
            """, """
            assert reverse_each_word('hello world') == 'olleh dlrow'
            assert reverse_each_word('') == ''
            assert reverse_each_word('a b') == 'a b'
            assert reverse_each_word('ab  cd') == 'ba  dc'
            """),
    problem("longest_palindrome", "longest_palindrome(s)",
            "Return the longest substring of s that reads the same forwards and backwards (the first one found from "
            "the left if several are as long; '' for an empty s).",
            """
            def longest_palindrome(s):
                best = ''
                for i in range(len(s)):
                    for j in range(len(s), i, -1):
                        part = s[i:j]
                        if len(part) > len(best) and part == part[::-1]:
                            best = part
                return best
            """, """
            assert longest_palindrome('babad') == 'bab'
            assert longest_palindrome('cbbd') == 'bb'
            assert longest_palindrome('a') == 'a'
            assert longest_palindrome('') == ''
            assert longest_palindrome('abc') == 'a'
            assert longest_palindrome('forgeeksskeegfor') == 'geeksskeeg'
            assert longest_palindrome('abcc') == 'cc'
            """),
    problem("max_depth_parens", "max_depth_parens(s)",
            "Return the deepest nesting of parentheses in the string s, whose parentheses are balanced (other "
            "characters are ignored; 0 if there are none).",
            """
            def max_depth_parens(s):
                depth = best = 0
                for ch in s:
                    if ch == '(':
                        depth += 1
                        best = max(best, depth)
                    elif ch == ')':
                        depth -= 1
                return best
            """, """
            assert max_depth_parens('(()())') == 2
            assert max_depth_parens('') == 0
            assert max_depth_parens('()') == 1
            assert max_depth_parens('((()))()') == 3
            assert max_depth_parens('a(b)c') == 1
            assert max_depth_parens('()()()') == 1
            assert max_depth_parens('()(())') == 2
            """),
    problem("extract_numbers", "extract_numbers(text)",
            "Return the whole numbers written with the digits 0-9 in text, as a list of integers in order, e.g. "
            "'a1b22' gives [1, 22].",
            """
            def extract_numbers(text):
                numbers = []
                current = ''
                for ch in text + ' ':
                    if ch in '0123456789':
                        current += ch
                    elif current:
                        numbers.append(int(current))
                        current = ''
                return numbers
            """, """
            assert extract_numbers('a1b22c333') == [1, 22, 333]
            assert extract_numbers('') == []
            assert extract_numbers('no digits') == []
            assert extract_numbers('42') == [42]
            assert extract_numbers('7 8') == [7, 8]
            assert extract_numbers('007x') == [7]
            """),
    problem("is_valid_hex_color", "is_valid_hex_color(s)",
            "Return True if the string s is '#' followed by exactly six hexadecimal digits (0-9, a-f, A-F), otherwise "
            "False.",
            """
            def is_valid_hex_color(s):
                return len(s) == 7 and s[0] == '#' and all(c in '0123456789abcdefABCDEF' for c in s[1:])
            """, """
            assert is_valid_hex_color('#1a2B3c') is True
            assert is_valid_hex_color('#FFFFFF') is True
            assert is_valid_hex_color('#12345') is False
            assert is_valid_hex_color('1234567') is False
            assert is_valid_hex_color('#12345g') is False
            assert is_valid_hex_color('#g12345') is False
            assert is_valid_hex_color('#1234567') is False
            assert is_valid_hex_color('') is False
            """),
    problem("is_rotation", "is_rotation(a, b)",
            "Return True if the string b is a rotation of the string a (the same characters moved from the front to "
            "the back), otherwise False.",
            """
            def is_rotation(a, b):
                return len(a) == len(b) and b in a + a
            """, """
            assert is_rotation('abcde', 'cdeab') is True
            assert is_rotation('abc', 'acb') is False
            assert is_rotation('', '') is True
            assert is_rotation('ab', 'aba') is False
            assert is_rotation('aa', 'aa') is True
            """),
    problem("ordinal", "ordinal(n)",
            "Return the non-negative integer n as an English ordinal: '1st', '2nd', '3rd', '4th', ..., with 'th' for "
            "11, 12 and 13 (so '11th', '21st', '112th').",
            """
            def ordinal(n):
                if n % 100 in (11, 12, 13):
                    return f'{n}th'
                suffix = {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')
                return f'{n}{suffix}'
            """, """
            assert ordinal(1) == '1st'
            assert ordinal(2) == '2nd'
            assert ordinal(3) == '3rd'
            assert ordinal(4) == '4th'
            assert ordinal(10) == '10th'
            assert ordinal(11) == '11th'
            assert ordinal(12) == '12th'
            assert ordinal(13) == '13th'
            assert ordinal(14) == '14th'
            assert ordinal(21) == '21st'
            assert ordinal(22) == '22nd'
            assert ordinal(23) == '23rd'
            assert ordinal(101) == '101st'
            assert ordinal(111) == '111th'
            assert ordinal(112) == '112th'
            assert ordinal(113) == '113th'
            assert ordinal(0) == '0th'
            """),
    problem("hamming_distance", "hamming_distance(a, b)",
            "Return the number of positions at which the equal-length strings a and b have different characters.",
            """
            def hamming_distance(a, b):
                return sum(1 for x, y in zip(a, b) if x != y)
            """, """
            assert hamming_distance('karolin', 'kathrin') == 3
            assert hamming_distance('', '') == 0
            assert hamming_distance('abc', 'abc') == 0
            assert hamming_distance('a', 'b') == 1
            """),
]

LISTS: list[Problem] = [
    problem("second_largest", "second_largest(numbers)",
            "Return the second largest distinct value in the list numbers, or None if it has fewer than two distinct "
            "values.",
            """
            def second_largest(numbers):
                distinct = sorted(set(numbers))
                return distinct[-2] if len(distinct) >= 2 else None
            """, """
            assert second_largest([1, 3, 2]) == 2
            assert second_largest([5, 5, 4]) == 4
            assert second_largest([7, 7]) is None
            assert second_largest([]) is None
            assert second_largest([-1, -5]) == -5
            assert second_largest([10, 20, 20, 30]) == 20
            """),
    problem("flatten", "flatten(nested)",
            "Return one list holding the items of every list in the list nested, in order.",
            """
            def flatten(nested):
                return [item for sub in nested for item in sub]
            """, """
            assert flatten([[1, 2], [3]]) == [1, 2, 3]
            assert flatten([]) == []
            assert flatten([[], [4]]) == [4]
            assert flatten([['a'], ['b', 'c']]) == ['a', 'b', 'c']
            """),
    problem("deep_flatten", "deep_flatten(items)",
            "Return a flat list of all the values in the list items that are not lists, in order, where items may hold "
            "lists nested to any depth.",
            """
            def deep_flatten(items):
                flat = []
                for item in items:
                    if isinstance(item, list):
                        flat.extend(deep_flatten(item))
                    else:
                        flat.append(item)
                return flat
            """, """
            assert deep_flatten([1, [2, [3, [4]]], 5]) == [1, 2, 3, 4, 5]
            assert deep_flatten([]) == []
            assert deep_flatten([[[]]]) == []
            assert deep_flatten(['a', ['b']]) == ['a', 'b']
            assert deep_flatten([(1, 2)]) == [(1, 2)]
            """),
    problem("chunk", "chunk(items, size)",
            "Split the list items into consecutive lists of length size (a positive integer); the last one may be "
            "shorter.",
            """
            def chunk(items, size):
                return [items[i:i + size] for i in range(0, len(items), size)]
            """, """
            assert chunk([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
            assert chunk([], 3) == []
            assert chunk([1, 2, 3], 3) == [[1, 2, 3]]
            assert chunk([1, 2], 5) == [[1, 2]]
            assert chunk([1, 2, 3, 4], 1) == [[1], [2], [3], [4]]
            """),
    problem("rotate_right", "rotate_right(items, k)",
            "Return a new list with the items of the list items rotated right by k positions (k is at least 0 and may "
            "exceed the length), e.g. [1, 2, 3, 4, 5] by 2 gives [4, 5, 1, 2, 3].",
            """
            def rotate_right(items, k):
                k %= max(len(items), 1)
                return items[len(items) - k:] + items[:len(items) - k]
            """, """
            assert rotate_right([1, 2, 3, 4, 5], 2) == [4, 5, 1, 2, 3]
            assert rotate_right([1, 2, 3], 0) == [1, 2, 3]
            assert rotate_right([1, 2, 3], 3) == [1, 2, 3]
            assert rotate_right([1, 2, 3], 4) == [3, 1, 2]
            assert rotate_right([], 2) == []
            assert rotate_right(['a'], 7) == ['a']
            """),
    problem("running_total", "running_total(numbers)",
            "Return a list whose k-th element is the sum of the first k + 1 numbers of the list numbers.",
            """
            def running_total(numbers):
                totals = []
                acc = 0
                for n in numbers:
                    acc += n
                    totals.append(acc)
                return totals
            """, """
            assert running_total([1, 2, 3]) == [1, 3, 6]
            assert running_total([]) == []
            assert running_total([5]) == [5]
            assert running_total([2, -2, 4]) == [2, 0, 4]
            """),
    problem("pairwise_differences", "pairwise_differences(numbers)",
            "Return the list of differences between consecutive numbers of the list numbers: each number minus the one "
            "before it.",
            """
            def pairwise_differences(numbers):
                return [b - a for a, b in zip(numbers, numbers[1:])]
            """, """
            assert pairwise_differences([1, 4, 9]) == [3, 5]
            assert pairwise_differences([5]) == []
            assert pairwise_differences([]) == []
            assert pairwise_differences([3, 1]) == [-2]
            assert pairwise_differences([1, 2, 4, 7]) == [1, 2, 3]
            """),
    problem("index_of_max", "index_of_max(numbers)",
            "Return the index of the largest number in the non-empty list numbers (the first such index if the largest "
            "occurs more than once).",
            """
            def index_of_max(numbers):
                best = 0
                for i, n in enumerate(numbers):
                    if n > numbers[best]:
                        best = i
                return best
            """, """
            assert index_of_max([1, 3, 2]) == 1
            assert index_of_max([5, 1]) == 0
            assert index_of_max([2, 7, 7]) == 1
            assert index_of_max([4]) == 0
            assert index_of_max([-3, -1, -2]) == 1
            assert index_of_max([1, 2, 3]) == 2
            """),
    problem("count_greater", "count_greater(numbers, threshold)",
            "Return how many numbers in the list numbers are strictly greater than threshold.",
            """
            def count_greater(numbers, threshold):
                return sum(1 for n in numbers if n > threshold)
            """, """
            assert count_greater([1, 5, 3, 7], 3) == 2
            assert count_greater([], 0) == 0
            assert count_greater([3, 3], 3) == 0
            assert count_greater([4], 3) == 1
            assert count_greater([-1, -2], -3) == 2
            """),
    problem("filter_by_length", "filter_by_length(words, n)",
            "Return the strings of the list words that have at least n characters, in their original order.",
            """
            def filter_by_length(words, n):
                return [word for word in words if len(word) >= n]
            """, """
            assert filter_by_length(['a', 'abc', 'ab'], 2) == ['abc', 'ab']
            assert filter_by_length([], 1) == []
            assert filter_by_length(['xyz'], 4) == []
            assert filter_by_length(['', 'a'], 0) == ['', 'a']
            assert filter_by_length(['abcd', 'abc'], 4) == ['abcd']
            """),
    problem("interleave", "interleave(a, b)",
            "Return a list that takes items from the lists a and b in turn, starting with a; the remaining items of "
            "the longer list come at the end.",
            """
            def interleave(a, b):
                out = []
                for i in range(max(len(a), len(b))):
                    if i < len(a):
                        out.append(a[i])
                    if i < len(b):
                        out.append(b[i])
                return out
            """, """
            assert interleave([1, 2, 3], ['a', 'b', 'c']) == [1, 'a', 2, 'b', 3, 'c']
            assert interleave([1, 2, 3], [9]) == [1, 9, 2, 3]
            assert interleave([], [4, 5]) == [4, 5]
            assert interleave([], []) == []
            assert interleave([1], [2, 3, 4]) == [1, 2, 3, 4]
            """),
    problem("unique_sorted", "unique_sorted(numbers)",
            "Return the distinct values of the list numbers in increasing order.",
            """
            def unique_sorted(numbers):
                return sorted(set(numbers))
            """, """
            assert unique_sorted([3, 1, 3, 2]) == [1, 2, 3]
            assert unique_sorted([]) == []
            assert unique_sorted([5, 5]) == [5]
            assert unique_sorted([-1, 2, -1]) == [-1, 2]
            """),
    problem("find_index", "find_index(items, value)",
            "Return the index of the first element of the list items equal to value, or -1 if there is none (without "
            "using list.index).",
            """
            def find_index(items, value):
                for i, item in enumerate(items):
                    if item == value:
                        return i
                return -1
            """, """
            assert find_index([4, 5, 6], 5) == 1
            assert find_index([4, 5, 6], 7) == -1
            assert find_index([], 1) == -1
            assert find_index([2, 2], 2) == 0
            assert find_index(['a', 'b'], 'b') == 1
            assert find_index([0, 1], 0) == 0
            """),
    problem("last_index", "last_index(items, value)",
            "Return the index of the last element of the list items equal to value, or -1 if there is none.",
            """
            def last_index(items, value):
                found = -1
                for i, item in enumerate(items):
                    if item == value:
                        found = i
                return found
            """, """
            assert last_index([1, 2, 1], 1) == 2
            assert last_index([1, 2, 3], 4) == -1
            assert last_index([], 0) == -1
            assert last_index([5], 5) == 0
            assert last_index(['a', 'b', 'b', 'c'], 'b') == 2
            """),
    problem("move_zeros", "move_zeros(numbers)",
            "Return a new list with the non-zero numbers of the list numbers in their order, followed by all its "
            "zeros.",
            """
            def move_zeros(numbers):
                nonzero = [n for n in numbers if n != 0]
                return nonzero + [0] * (len(numbers) - len(nonzero))
            """, """
            assert move_zeros([0, 1, 0, 3, 12]) == [1, 3, 12, 0, 0]
            assert move_zeros([]) == []
            assert move_zeros([0, 0]) == [0, 0]
            assert move_zeros([1, 2]) == [1, 2]
            assert move_zeros([0, -1]) == [-1, 0]
            """),
    problem("sum_of_squares", "sum_of_squares(numbers)",
            "Return the sum of the squares of the numbers in the list numbers (0 for an empty list).",
            """
            def sum_of_squares(numbers):
                return sum(n * n for n in numbers)
            """, """
            assert sum_of_squares([1, 2, 3]) == 14
            assert sum_of_squares([]) == 0
            assert sum_of_squares([-2]) == 4
            assert sum_of_squares([0, 5]) == 25
            """),
    problem("alternating_sum", "alternating_sum(numbers)",
            "Return numbers[0] - numbers[1] + numbers[2] - numbers[3] + ... for the list numbers (0 for an empty "
            "list).",
            """
            def alternating_sum(numbers):
                total = 0
                for i, n in enumerate(numbers):
                    if i % 2 == 0:
                        total += n
                    else:
                        total -= n
                return total
            """, """
            assert alternating_sum([1, 2, 3]) == 2
            assert alternating_sum([]) == 0
            assert alternating_sum([5]) == 5
            assert alternating_sum([1, 1, 1, 1]) == 0
            assert alternating_sum([10, 3, 4, 1]) == 10
            """),
    problem("dot_product", "dot_product(a, b)",
            "Return the dot product of the equal-length lists of numbers a and b: the sum of a[i] * b[i].",
            """
            def dot_product(a, b):
                return sum(x * y for x, y in zip(a, b))
            """, """
            assert dot_product([1, 2, 3], [4, 5, 6]) == 32
            assert dot_product([], []) == 0
            assert dot_product([2], [-3]) == -6
            assert dot_product([1, 0], [0, 1]) == 0
            """),
    problem("count_pairs_sum", "count_pairs_sum(numbers, target)",
            "Return how many pairs of positions i < j in the list numbers have numbers[i] + numbers[j] equal to "
            "target.",
            """
            def count_pairs_sum(numbers, target):
                count = 0
                for i in range(len(numbers)):
                    for j in range(i + 1, len(numbers)):
                        if numbers[i] + numbers[j] == target:
                            count += 1
                return count
            """, """
            assert count_pairs_sum([1, 2, 3, 4], 5) == 2
            assert count_pairs_sum([1, 1, 1], 2) == 3
            assert count_pairs_sum([], 0) == 0
            assert count_pairs_sum([5], 10) == 0
            assert count_pairs_sum([2, 3], 4) == 0
            assert count_pairs_sum([0, 0], 0) == 1
            """),
    problem("max_subarray_sum", "max_subarray_sum(numbers)",
            "Return the largest sum of a non-empty run of consecutive numbers in the non-empty list numbers.",
            """
            def max_subarray_sum(numbers):
                best = current = numbers[0]
                for n in numbers[1:]:
                    current = max(n, current + n)
                    best = max(best, current)
                return best
            """, """
            assert max_subarray_sum([-2, 1, -3, 4, -1, 2, 1, -5, 4]) == 6
            assert max_subarray_sum([1]) == 1
            assert max_subarray_sum([-3, -1, -2]) == -1
            assert max_subarray_sum([2, 3]) == 5
            assert max_subarray_sum([5, -9, 6]) == 6
            assert max_subarray_sum([3, -1, 2]) == 4
            """),
    problem("longest_run", "longest_run(items)",
            "Return the length of the longest run of equal adjacent elements in the list items (0 for an empty list).",
            """
            def longest_run(items):
                best = 0
                for i, item in enumerate(items):
                    run = run + 1 if i and item == items[i - 1] else 1
                    best = max(best, run)
                return best
            """, """
            assert longest_run([1, 1, 2, 2, 2, 3]) == 3
            assert longest_run([]) == 0
            assert longest_run([5]) == 1
            assert longest_run([1, 2, 3]) == 1
            assert longest_run([4, 4]) == 2
            assert longest_run([1, 1, 2, 1, 1]) == 2
            assert longest_run([7, 7, 7, 1]) == 3
            """),
    problem("mode", "mode(numbers)",
            "Return the value that occurs most often in the non-empty list numbers; if several occur equally often, "
            "the smallest of them.",
            """
            from collections import Counter


            def mode(numbers):
                counts = Counter(numbers)
                best = max(counts.values())
                return min(n for n, c in counts.items() if c == best)
            """, """
            assert mode([1, 2, 2, 3]) == 2
            assert mode([4]) == 4
            assert mode([3, 1, 3, 1]) == 1
            assert mode([5, 5, 5, 2, 2]) == 5
            assert mode([-1, -1, 2]) == -1
            assert mode([8, 7]) == 7
            """),
    problem("pair_sum_exists", "pair_sum_exists(numbers, target)",
            "Return True if two numbers at different positions of the list numbers add up to target, otherwise False.",
            """
            def pair_sum_exists(numbers, target):
                seen = set()
                for n in numbers:
                    if target - n in seen:
                        return True
                    seen.add(n)
                return False
            """, """
            assert pair_sum_exists([1, 4, 6], 10) is True
            assert pair_sum_exists([1, 4, 6], 8) is False
            assert pair_sum_exists([5], 10) is False
            assert pair_sum_exists([5, 5], 10) is True
            assert pair_sum_exists([], 0) is False
            assert pair_sum_exists([3, -3], 0) is True
            assert pair_sum_exists([2, 7, 11], 9) is True
            """),
    problem("median", "median(numbers)",
            "Return the median of the non-empty list numbers: the middle value once sorted, or the mean of the two "
            "middle values when the length is even.",
            """
            def median(numbers):
                ordered = sorted(numbers)
                middle = len(ordered) // 2
                if len(ordered) % 2:
                    return ordered[middle]
                return (ordered[middle - 1] + ordered[middle]) / 2
            """, """
            assert median([3, 1, 2]) == 2
            assert median([4, 1, 3, 2]) == 2.5
            assert median([5]) == 5
            assert median([1, 2]) == 1.5
            assert median([7, 7, 1, 9]) == 7
            assert median([-5, 0, 5, 10]) == 2.5
            """),
    problem("remove_all", "remove_all(items, value)",
            "Return a new list with the elements of the list items that are not equal to value, in order.",
            """
            def remove_all(items, value):
                return [x for x in items if x != value]
            """, """
            assert remove_all([1, 2, 1, 3], 1) == [2, 3]
            assert remove_all([], 1) == []
            assert remove_all([2], 3) == [2]
            assert remove_all(['a', 'a'], 'a') == []
            """),
    problem("remove_at", "remove_at(items, index)",
            "Return a new list with the elements of the list items except the one at position index (a valid "
            "non-negative index).",
            """
            def remove_at(items, index):
                return items[:index] + items[index + 1:]
            """, """
            assert remove_at([1, 2, 3], 1) == [1, 3]
            assert remove_at([1], 0) == []
            assert remove_at(['a', 'b'], 1) == ['a']
            assert remove_at([1, 2, 3], 0) == [2, 3]
            """),
    problem("insert_sorted", "insert_sorted(numbers, value)",
            "Return a new increasing list holding the numbers of the increasing list numbers and value.",
            """
            def insert_sorted(numbers, value):
                for i, n in enumerate(numbers):
                    if value < n:
                        return numbers[:i] + [value] + numbers[i:]
                return numbers + [value]
            """, """
            assert insert_sorted([1, 3, 5], 4) == [1, 3, 4, 5]
            assert insert_sorted([], 2) == [2]
            assert insert_sorted([1, 2], 0) == [0, 1, 2]
            assert insert_sorted([1, 2], 9) == [1, 2, 9]
            assert insert_sorted([1, 2, 2, 3], 2) == [1, 2, 2, 2, 3]
            """),
    problem("window_sums", "window_sums(numbers, k)",
            "Return the sums of every run of k consecutive numbers in the list numbers, from left to right (k is "
            "positive; an empty list if numbers is shorter than k).",
            """
            def window_sums(numbers, k):
                return [sum(numbers[i:i + k]) for i in range(len(numbers) - k + 1)]
            """, """
            assert window_sums([1, 2, 3, 4], 2) == [3, 5, 7]
            assert window_sums([1, 2, 3], 3) == [6]
            assert window_sums([1, 2], 3) == []
            assert window_sums([5], 1) == [5]
            assert window_sums([1, 2, 3, 4], 1) == [1, 2, 3, 4]
            """),
    problem("intersection", "intersection(a, b)",
            "Return the elements of the list a that also occur in the list b, in a's order and each value only once.",
            """
            def intersection(a, b):
                result = []
                for x in a:
                    if x in b and x not in result:
                        result.append(x)
                return result
            """, """
            assert intersection([1, 2, 2, 3], [2, 3, 4]) == [2, 3]
            assert intersection([], [1]) == []
            assert intersection([1], []) == []
            assert intersection([3, 1], [1, 3]) == [3, 1]
            assert intersection([5, 5], [5]) == [5]
            """),
    problem("difference", "difference(a, b)",
            "Return the elements of the list a that do not occur in the list b, in order (repeated elements stay "
            "repeated).",
            """
            def difference(a, b):
                return [x for x in a if x not in b]
            """, """
            assert difference([1, 2, 2, 3], [2]) == [1, 3]
            assert difference([], [1]) == []
            assert difference([1, 1], []) == [1, 1]
            assert difference(['a', 'b'], ['a', 'b']) == []
            """),
    problem("union_sorted", "union_sorted(a, b)",
            "Return the distinct values that occur in the list a or the list b (or both), in increasing order.",
            """
            def union_sorted(a, b):
                return sorted(set(a) | set(b))
            """, """
            assert union_sorted([3, 1], [2, 3]) == [1, 2, 3]
            assert union_sorted([], []) == []
            assert union_sorted([1, 1], []) == [1]
            assert union_sorted([], [5, 4]) == [4, 5]
            """),
    problem("kth_largest", "kth_largest(numbers, k)",
            "Return the k-th largest number of the list numbers, counting repeated values (k = 1 is the largest; 1 <= "
            "k <= len(numbers)).",
            """
            def kth_largest(numbers, k):
                return sorted(numbers, reverse=True)[k - 1]
            """, """
            assert kth_largest([3, 1, 2], 1) == 3
            assert kth_largest([3, 1, 2], 3) == 1
            assert kth_largest([5, 5, 4], 2) == 5
            assert kth_largest([7], 1) == 7
            assert kth_largest([1, 2, 3, 4], 2) == 3
            """),
    problem("remove_smallest", "remove_smallest(numbers)",
            "Return a new list with the numbers of the list numbers except the first occurrence of the smallest one "
            "(an empty list stays empty).",
            """
            def remove_smallest(numbers):
                result = list(numbers)
                if result:
                    result.remove(min(result))
                return result
            """, """
            assert remove_smallest([1, 2, 3]) == [2, 3]
            assert remove_smallest([5, 3, 2, 1, 4]) == [5, 3, 2, 4]
            assert remove_smallest([2, 2, 1, 2, 1]) == [2, 2, 2, 1]
            assert remove_smallest([]) == []
            assert remove_smallest([7]) == []
            """),
    problem("pair_up", "pair_up(items)",
            "Return the items of the list items as a list of consecutive pairs (tuples): (items[0], items[1]), "
            "(items[2], items[3]), ...; a last unpaired item is dropped.",
            """
            def pair_up(items):
                return [(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
            """, """
            assert pair_up([1, 2, 3, 4]) == [(1, 2), (3, 4)]
            assert pair_up([1, 2, 3]) == [(1, 2)]
            assert pair_up([]) == []
            assert pair_up(['a']) == []
            assert pair_up([1, 2]) == [(1, 2)]
            """),
    problem("running_max", "running_max(numbers)",
            "Return a list whose k-th element is the largest of the first k + 1 numbers of the list numbers.",
            """
            def running_max(numbers):
                result = []
                for n in numbers:
                    result.append(max(n, result[-1]) if result else n)
                return result
            """, """
            assert running_max([1, 3, 2, 5, 4]) == [1, 3, 3, 5, 5]
            assert running_max([]) == []
            assert running_max([-1, -2]) == [-1, -1]
            assert running_max([2, 2]) == [2, 2]
            """),
    problem("running_average", "running_average(numbers)",
            "Return a list whose k-th element is the mean of the first k + 1 numbers of the list numbers.",
            """
            def running_average(numbers):
                result = []
                total = 0
                for k, n in enumerate(numbers, 1):
                    total += n
                    result.append(total / k)
                return result
            """, """
            assert running_average([2, 4, 6]) == [2, 3, 4]
            assert running_average([]) == []
            assert running_average([1, 2]) == [1, 1.5]
            assert running_average([5]) == [5]
            """),
    problem("is_monotonic", "is_monotonic(numbers)",
            "Return True if the list numbers never decreases or never increases from one element to the next, "
            "otherwise False.",
            """
            def is_monotonic(numbers):
                increasing = all(a <= b for a, b in zip(numbers, numbers[1:]))
                decreasing = all(a >= b for a, b in zip(numbers, numbers[1:]))
                return increasing or decreasing
            """, """
            assert is_monotonic([1, 2, 2, 3]) is True
            assert is_monotonic([6, 5, 4, 4]) is True
            assert is_monotonic([1, 3, 2]) is False
            assert is_monotonic([3, 1, 2]) is False
            assert is_monotonic([]) is True
            assert is_monotonic([5]) is True
            assert is_monotonic([3, 3]) is True
            """),
    problem("nearest_value", "nearest_value(numbers, target)",
            "Return the number in the non-empty list numbers closest to target; if two are equally close, the smaller "
            "one.",
            """
            def nearest_value(numbers, target):
                return min(numbers, key=lambda n: (abs(n - target), n))
            """, """
            assert nearest_value([1, 5, 9], 6) == 5
            assert nearest_value([1, 5, 9], 7) == 5
            assert nearest_value([4], 100) == 4
            assert nearest_value([3, -3], 0) == -3
            assert nearest_value([10, 20], 18) == 20
            """),
    problem("normalize", "normalize(numbers)",
            "Scale the non-empty list numbers to the range 0 to 1: return (n - smallest) / (largest - smallest) for "
            "each n, or all 0.0 if every number is the same.",
            """
            def normalize(numbers):
                low, high = min(numbers), max(numbers)
                if high == low:
                    return [0.0 for _ in numbers]
                return [(n - low) / (high - low) for n in numbers]
            """, """
            assert normalize([0, 5, 10]) == [0.0, 0.5, 1.0]
            assert normalize([3, 3]) == [0.0, 0.0]
            assert normalize([2, 4]) == [0.0, 1.0]
            assert normalize([1, 2, 5]) == [0.0, 0.25, 1.0]
            """),
    problem("split_evens_odds", "split_evens_odds(numbers)",
            "Return a tuple of two lists: the even integers of the list numbers and then its odd integers, each in "
            "their original order.",
            """
            def split_evens_odds(numbers):
                return ([n for n in numbers if n % 2 == 0], [n for n in numbers if n % 2 != 0])
            """, """
            assert split_evens_odds([1, 2, 3, 4]) == ([2, 4], [1, 3])
            assert split_evens_odds([]) == ([], [])
            assert split_evens_odds([0, -3]) == ([0], [-3])
            assert split_evens_odds([5, 7]) == ([], [5, 7])
            """),
    problem("sum_nested", "sum_nested(items)",
            "Return the sum of all numbers in the list items, which may hold lists of numbers nested to any depth (0 "
            "if there are none).",
            """
            def sum_nested(items):
                total = 0
                for item in items:
                    total += sum_nested(item) if isinstance(item, list) else item
                return total
            """, """
            assert sum_nested([1, [2, [3]], 4]) == 10
            assert sum_nested([]) == 0
            assert sum_nested([[], [[]]]) == 0
            assert sum_nested([5]) == 5
            assert sum_nested([-1, [1]]) == 0
            """),
    problem("nesting_depth", "nesting_depth(items)",
            "Return how deeply the list items nests lists: 1 for a list without lists inside, 2 if the deepest inner "
            "list has no lists inside, and so on.",
            """
            def nesting_depth(items):
                return 1 + max((nesting_depth(x) for x in items if isinstance(x, list)), default=0)
            """, """
            assert nesting_depth([]) == 1
            assert nesting_depth([1, 2]) == 1
            assert nesting_depth([[1], [2, [3]]]) == 3
            assert nesting_depth([[[]]]) == 3
            """),
    problem("smallest_missing_positive", "smallest_missing_positive(numbers)",
            "Return the smallest positive integer that does not occur in the list of integers numbers.",
            """
            def smallest_missing_positive(numbers):
                present = set(numbers)
                k = 1
                while k in present:
                    k += 1
                return k
            """, """
            assert smallest_missing_positive([1, 2, 0]) == 3
            assert smallest_missing_positive([3, 4, -1, 1]) == 2
            assert smallest_missing_positive([7, 8, 9]) == 1
            assert smallest_missing_positive([]) == 1
            assert smallest_missing_positive([1]) == 2
            assert smallest_missing_positive([2, 1, 4]) == 3
            """),
    problem("equilibrium_index", "equilibrium_index(numbers)",
            "Return the first index i where the sum of the numbers before position i equals the sum of those after it, "
            "or -1 if there is none.",
            """
            def equilibrium_index(numbers):
                total = sum(numbers)
                left = 0
                for i, n in enumerate(numbers):
                    if left == total - left - n:
                        return i
                    left += n
                return -1
            """, """
            assert equilibrium_index([1, 7, 3, 6, 5, 6]) == 3
            assert equilibrium_index([1, 2, 3]) == -1
            assert equilibrium_index([2, 1, -1]) == 0
            assert equilibrium_index([0]) == 0
            assert equilibrium_index([]) == -1
            assert equilibrium_index([1, 0, 1]) == 1
            assert equilibrium_index([-1, 1, 0]) == 2
            """),
]

DICTS: list[Problem] = [
    problem("group_by_length", "group_by_length(words)",
            "Return a dictionary mapping each length to the list of strings in the list words with that length, in "
            "their original order.",
            """
            def group_by_length(words):
                groups = {}
                for word in words:
                    groups.setdefault(len(word), []).append(word)
                return groups
            """, """
            assert group_by_length(['a', 'bb', 'c']) == {1: ['a', 'c'], 2: ['bb']}
            assert group_by_length([]) == {}
            assert group_by_length(['', 'x']) == {0: [''], 1: ['x']}
            """),
    problem("invert_dict", "invert_dict(d)",
            "Return a new dictionary mapping each value of the dictionary d to its key (the values of d are all "
            "different).",
            """
            def invert_dict(d):
                return {value: key for key, value in d.items()}
            """, """
            assert invert_dict({'a': 1, 'b': 2}) == {1: 'a', 2: 'b'}
            assert invert_dict({}) == {}
            assert invert_dict({'x': 'y'}) == {'y': 'x'}
            """),
    problem("keys_with_value", "keys_with_value(d, value)",
            "Return the keys of the dictionary d whose value equals value, as a sorted list.",
            """
            def keys_with_value(d, value):
                return sorted(key for key, v in d.items() if v == value)
            """, """
            assert keys_with_value({'a': 1, 'b': 2, 'c': 1}, 1) == ['a', 'c']
            assert keys_with_value({}, 0) == []
            assert keys_with_value({'x': 5}, 6) == []
            assert keys_with_value({'b': 0, 'a': 0}, 0) == ['a', 'b']
            """),
    problem("key_of_max", "key_of_max(d)",
            "Return the key of the dictionary d with the largest value (the first such key in d's order on a tie), or "
            "None if d is empty.",
            """
            def key_of_max(d):
                best = None
                for key, value in d.items():
                    if best is None or value > d[best]:
                        best = key
                return best
            """, """
            assert key_of_max({'a': 1, 'b': 3, 'c': 2}) == 'b'
            assert key_of_max({}) is None
            assert key_of_max({'x': 5, 'y': 5}) == 'x'
            assert key_of_max({'p': -1, 'q': -2}) == 'p'
            """),
    problem("filter_dict", "filter_dict(d, keys)",
            "Return a new dictionary with only the items of the dictionary d whose key is in the list keys.",
            """
            def filter_dict(d, keys):
                return {key: value for key, value in d.items() if key in keys}
            """, """
            assert filter_dict({'a': 1, 'b': 2, 'c': 3}, ['a', 'c']) == {'a': 1, 'c': 3}
            assert filter_dict({'a': 1}, []) == {}
            assert filter_dict({}, ['a']) == {}
            assert filter_dict({'a': 1}, ['a', 'z']) == {'a': 1}
            """),
    problem("merge_counts", "merge_counts(a, b)",
            "Return a new dictionary with every key of the dictionaries a and b; a key in both gets the sum of its two "
            "values.",
            """
            def merge_counts(a, b):
                merged = dict(a)
                for key, value in b.items():
                    merged[key] = merged.get(key, 0) + value
                return merged
            """, """
            assert merge_counts({'x': 1, 'y': 2}, {'y': 3, 'z': 4}) == {'x': 1, 'y': 5, 'z': 4}
            assert merge_counts({}, {}) == {}
            assert merge_counts({'a': 1}, {}) == {'a': 1}
            assert merge_counts({}, {'a': 2}) == {'a': 2}
            """),
    problem("nested_get", "nested_get(d, path)",
            "Follow the list of keys path through nested dictionaries starting at d and return the value reached, or "
            "None if a key is missing or a value on the way is not a dictionary.",
            """
            def nested_get(d, path):
                current = d
                for key in path:
                    if not isinstance(current, dict) or key not in current:
                        return None
                    current = current[key]
                return current
            """, """
            assert nested_get({'a': {'b': {'c': 1}}}, ['a', 'b', 'c']) == 1
            assert nested_get({'a': {'b': 2}}, ['a', 'x']) is None
            assert nested_get({'a': 1}, []) == {'a': 1}
            assert nested_get({'a': 1}, ['a', 'b']) is None
            assert nested_get({}, ['a']) is None
            assert nested_get({'a': {'b': 0}}, ['a', 'b']) == 0
            """),
    problem("count_by_first_letter", "count_by_first_letter(words)",
            "Return a dictionary mapping each lower-cased first letter of the non-empty strings in the list words to "
            "how many of them start with it (empty strings are skipped).",
            """
            def count_by_first_letter(words):
                counts = {}
                for word in words:
                    if word:
                        letter = word[0].lower()
                        counts[letter] = counts.get(letter, 0) + 1
                return counts
            """, """
            assert count_by_first_letter(['apple', 'Avocado', 'banana']) == {'a': 2, 'b': 1}
            assert count_by_first_letter([]) == {}
            assert count_by_first_letter(['', 'x']) == {'x': 1}
            assert count_by_first_letter(['Zed', 'zoo', 'zap']) == {'z': 3}
            """),
    problem("top_k_frequent", "top_k_frequent(words, k)",
            "Return the k most frequent strings of the list words, most frequent first; strings equally frequent come "
            "in alphabetical order.",
            """
            from collections import Counter


            def top_k_frequent(words, k):
                counts = Counter(words)
                return sorted(counts, key=lambda word: (-counts[word], word))[:k]
            """, """
            assert top_k_frequent(['a', 'b', 'a', 'c', 'b', 'a'], 2) == ['a', 'b']
            assert top_k_frequent(['x', 'y', 'z'], 2) == ['x', 'y']
            assert top_k_frequent([], 3) == []
            assert top_k_frequent(['b', 'b', 'a', 'a', 'c'], 3) == ['a', 'b', 'c']
            assert top_k_frequent(['q'], 0) == []
            """),
    problem("average_scores", "average_scores(scores)",
            "Given a dictionary mapping names to lists of numbers, return a dictionary mapping each name with a "
            "non-empty list to the mean of its numbers.",
            """
            def average_scores(scores):
                return {name: sum(values) / len(values) for name, values in scores.items() if values}
            """, """
            assert average_scores({'a': [1, 2, 3], 'b': [4]}) == {'a': 2, 'b': 4}
            assert average_scores({}) == {}
            assert average_scores({'c': []}) == {}
            assert average_scores({'d': [1, 2]}) == {'d': 1.5}
            """),
    problem("sort_by_value", "sort_by_value(d)",
            "Return the keys of the dictionary d sorted by their values, smallest first; keys with equal values in "
            "increasing key order.",
            """
            def sort_by_value(d):
                return sorted(d, key=lambda key: (d[key], key))
            """, """
            assert sort_by_value({'b': 2, 'a': 3, 'c': 1}) == ['c', 'b', 'a']
            assert sort_by_value({}) == []
            assert sort_by_value({'y': 1, 'x': 1}) == ['x', 'y']
            """),
    problem("group_anagrams", "group_anagrams(words)",
            "Group the strings of the list words that are anagrams of each other: return a list of groups (lists), "
            "groups in the order of their first word and words in their original order.",
            """
            def group_anagrams(words):
                groups = {}
                for word in words:
                    groups.setdefault(''.join(sorted(word)), []).append(word)
                return list(groups.values())
            """, """
            assert group_anagrams(['eat', 'tea', 'tan', 'ate', 'nat', 'bat']) == [['eat', 'tea', 'ate'], ['tan', 'nat'], ['bat']]
            assert group_anagrams([]) == []
            assert group_anagrams(['a']) == [['a']]
            assert group_anagrams(['ab', 'ba', 'abc']) == [['ab', 'ba'], ['abc']]
            """),  # noqa: E501 - a test line, part of the seed: kept as written
    problem("sum_by_key", "sum_by_key(pairs)",
            "Given a list of (key, number) tuples, return a dictionary mapping each key to the sum of its numbers.",
            """
            def sum_by_key(pairs):
                totals = {}
                for key, amount in pairs:
                    totals[key] = totals.get(key, 0) + amount
                return totals
            """, """
            assert sum_by_key([('a', 1), ('b', 2), ('a', 3)]) == {'a': 4, 'b': 2}
            assert sum_by_key([]) == {}
            assert sum_by_key([('x', -1)]) == {'x': -1}
            """),
    problem("rename_keys", "rename_keys(d, mapping)",
            "Return a new dictionary with the items of d, where each key that is a key of the dictionary mapping is "
            "replaced by mapping's value for it.",
            """
            def rename_keys(d, mapping):
                return {mapping.get(key, key): value for key, value in d.items()}
            """, """
            assert rename_keys({'a': 1, 'b': 2}, {'a': 'x'}) == {'x': 1, 'b': 2}
            assert rename_keys({}, {'a': 'b'}) == {}
            assert rename_keys({'k': 0}, {}) == {'k': 0}
            """),
    problem("count_in_range", "count_in_range(numbers, low, high)",
            "Return how many numbers n in the list numbers satisfy low <= n <= high.",
            """
            def count_in_range(numbers, low, high):
                return sum(1 for n in numbers if low <= n <= high)
            """, """
            assert count_in_range([1, 2, 3, 4, 5], 2, 4) == 3
            assert count_in_range([], 0, 1) == 0
            assert count_in_range([5, 5], 5, 5) == 2
            assert count_in_range([1, 9], 2, 8) == 0
            assert count_in_range([0, 10], 0, 10) == 2
            """),
    problem("parse_key_values", "parse_key_values(text)",
            "Parse text of the form 'a=1;b=2' into a dictionary of strings {'a': '1', 'b': '2'}: items are separated "
            "by ';' (empty items are skipped) and each key ends at its first '='.",
            """
            def parse_key_values(text):
                result = {}
                for item in text.split(';'):
                    if item:
                        key, value = item.split('=', 1)
                        result[key] = value
                return result
            """, """
            assert parse_key_values('a=1;b=2') == {'a': '1', 'b': '2'}
            assert parse_key_values('') == {}
            assert parse_key_values('x=1=2') == {'x': '1=2'}
            assert parse_key_values('a=1;;b=2;') == {'a': '1', 'b': '2'}
            assert parse_key_values('k=') == {'k': ''}
            """),
]

NUMBERS: list[Problem] = [
    problem("digital_root", "digital_root(n)",
            "Return the digital root of the non-negative integer n: add up its decimal digits, and repeat on the "
            "result until a single digit is left.",
            """
            def digital_root(n):
                while n >= 10:
                    n = sum(int(d) for d in str(n))
                return n
            """, """
            assert digital_root(16) == 7
            assert digital_root(942) == 6
            assert digital_root(0) == 0
            assert digital_root(10) == 1
            assert digital_root(99999) == 9
            assert digital_root(9) == 9
            """),
    problem("is_perfect_square", "is_perfect_square(n)",
            "Return True if the non-negative integer n is the square of an integer, otherwise False.",
            """
            import math


            def is_perfect_square(n):
                root = math.isqrt(n)
                return root * root == n
            """, """
            assert is_perfect_square(16) is True
            assert is_perfect_square(15) is False
            assert is_perfect_square(0) is True
            assert is_perfect_square(1) is True
            assert is_perfect_square(2) is False
            assert is_perfect_square(26) is False
            """),
    problem("count_divisors", "count_divisors(n)",
            "Return how many positive integers divide the positive integer n exactly (1 and n included).",
            """
            def count_divisors(n):
                return sum(1 for d in range(1, n + 1) if n % d == 0)
            """, """
            assert count_divisors(1) == 1
            assert count_divisors(6) == 4
            assert count_divisors(7) == 2
            assert count_divisors(12) == 6
            assert count_divisors(16) == 5
            """),
    problem("is_perfect_number", "is_perfect_number(n)",
            "Return True if the positive integer n equals the sum of its positive divisors smaller than n (e.g. 6 = 1 "
            "+ 2 + 3), otherwise False.",
            """
            def is_perfect_number(n):
                return n == sum(d for d in range(1, n) if n % d == 0)
            """, """
            assert is_perfect_number(6) is True
            assert is_perfect_number(28) is True
            assert is_perfect_number(12) is False
            assert is_perfect_number(1) is False
            assert is_perfect_number(496) is True
            assert is_perfect_number(8) is False
            """),
    problem("binary_to_int", "binary_to_int(bits)",
            "Return the integer whose binary digits are the string bits of '0' and '1' characters ('' gives 0), "
            "without calling int(bits, 2).",
            """
            def binary_to_int(bits):
                value = 0
                for bit in bits:
                    value = value * 2 + (1 if bit == '1' else 0)
                return value
            """, """
            assert binary_to_int('0') == 0
            assert binary_to_int('1') == 1
            assert binary_to_int('101') == 5
            assert binary_to_int('1111') == 15
            assert binary_to_int('10000') == 16
            assert binary_to_int('') == 0
            assert binary_to_int('0011') == 3
            """),
    problem("int_to_binary", "int_to_binary(n)",
            "Return the binary digits of the non-negative integer n as a string without leading zeros ('0' for 0), "
            "without calling bin or format.",
            """
            def int_to_binary(n):
                if n < 2:
                    return str(n)
                return int_to_binary(n // 2) + str(n % 2)
            """, """
            assert int_to_binary(0) == '0'
            assert int_to_binary(1) == '1'
            assert int_to_binary(2) == '10'
            assert int_to_binary(5) == '101'
            assert int_to_binary(8) == '1000'
            assert int_to_binary(255) == '11111111'
            """),
    problem("reverse_integer", "reverse_integer(n)",
            "Return the integer whose decimal digits are those of the integer n in reverse order, keeping its sign "
            "(e.g. -120 gives -21).",
            """
            def reverse_integer(n):
                if n < 0:
                    return -reverse_integer(-n)
                return int(str(n)[::-1])
            """, """
            assert reverse_integer(123) == 321
            assert reverse_integer(-120) == -21
            assert reverse_integer(0) == 0
            assert reverse_integer(5) == 5
            assert reverse_integer(1000) == 1
            assert reverse_integer(-1) == -1
            """),
    problem("sum_multiples", "sum_multiples(limit)",
            "Return the sum of the non-negative integers below limit that are multiples of 3 or of 5.",
            """
            def sum_multiples(limit):
                return sum(n for n in range(limit) if n % 3 == 0 or n % 5 == 0)
            """, """
            assert sum_multiples(10) == 23
            assert sum_multiples(0) == 0
            assert sum_multiples(1) == 0
            assert sum_multiples(4) == 3
            assert sum_multiples(6) == 8
            assert sum_multiples(16) == 60
            """),
    problem("primes_up_to", "primes_up_to(n)",
            "Return the list of prime numbers less than or equal to the integer n, in increasing order.",
            """
            def primes_up_to(n):
                sieve = [False, False] + [True] * (n - 1)
                p = 2
                while p * p <= n:
                    if sieve[p]:
                        for multiple in range(p * p, n + 1, p):
                            sieve[multiple] = False
                    p += 1
                return [k for k, prime in enumerate(sieve) if prime]
            """, """
            assert primes_up_to(10) == [2, 3, 5, 7]
            assert primes_up_to(1) == []
            assert primes_up_to(0) == []
            assert primes_up_to(2) == [2]
            assert primes_up_to(4) == [2, 3]
            assert primes_up_to(9) == [2, 3, 5, 7]
            assert primes_up_to(13) == [2, 3, 5, 7, 11, 13]
            assert primes_up_to(30) == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]
            """),
    problem("is_leap_year", "is_leap_year(year)",
            "Return True if year is a leap year of the Gregorian calendar (divisible by 4, except century years not "
            "divisible by 400), otherwise False.",
            """
            def is_leap_year(year):
                return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
            """, """
            assert is_leap_year(2000) is True
            assert is_leap_year(1900) is False
            assert is_leap_year(2024) is True
            assert is_leap_year(2023) is False
            assert is_leap_year(2100) is False
            assert is_leap_year(2400) is True
            assert is_leap_year(1996) is True
            assert is_leap_year(2022) is False
            """),
    problem("digit_count", "digit_count(n)",
            "Return how many decimal digits the integer n has, ignoring its sign (0 has one digit).",
            """
            def digit_count(n):
                return len(str(abs(n)))
            """, """
            assert digit_count(0) == 1
            assert digit_count(7) == 1
            assert digit_count(12345) == 5
            assert digit_count(-99) == 2
            """),
    problem("power", "power(base, exp)",
            "Return base raised to the non-negative integer exp by repeated multiplication (power(x, 0) is 1), without "
            "using ** or pow.",
            """
            def power(base, exp):
                result = 1
                for _ in range(exp):
                    result *= base
                return result
            """, """
            assert power(2, 10) == 1024
            assert power(5, 0) == 1
            assert power(-3, 3) == -27
            assert power(7, 1) == 7
            assert power(0, 0) == 1
            assert power(1, 5) == 1
            """),
    problem("lcm", "lcm(a, b)",
            "Return the least common multiple of the positive integers a and b.",
            """
            def lcm(a, b):
                x, y = a, b
                while y:
                    x, y = y, x % y
                return a * b // x
            """, """
            assert lcm(4, 6) == 12
            assert lcm(3, 5) == 15
            assert lcm(7, 7) == 7
            assert lcm(1, 9) == 9
            assert lcm(12, 18) == 36
            assert lcm(8, 4) == 8
            assert isinstance(lcm(4, 6), int)
            """),
    problem("is_armstrong", "is_armstrong(n)",
            "Return True if the non-negative integer n equals the sum of its decimal digits each raised to the power "
            "of the number of digits (e.g. 153 = 1**3 + 5**3 + 3**3), otherwise False.",
            """
            def is_armstrong(n):
                digits = str(n)
                return n == sum(int(d) ** len(digits) for d in digits)
            """, """
            assert is_armstrong(153) is True
            assert is_armstrong(370) is True
            assert is_armstrong(9474) is True
            assert is_armstrong(10) is False
            assert is_armstrong(0) is True
            assert is_armstrong(100) is False
            assert is_armstrong(9) is True
            """),
    problem("round_to_nearest", "round_to_nearest(x, step)",
            "Return the integer x rounded to the nearest multiple of the positive even integer step; a value exactly "
            "halfway rounds up.",
            """
            def round_to_nearest(x, step):
                return (x + step // 2) // step * step
            """, """
            assert round_to_nearest(7, 10) == 10
            assert round_to_nearest(4, 10) == 0
            assert round_to_nearest(15, 10) == 20
            assert round_to_nearest(14, 10) == 10
            assert round_to_nearest(0, 4) == 0
            assert round_to_nearest(-4, 10) == 0
            assert round_to_nearest(-6, 10) == -10
            assert round_to_nearest(5, 2) == 6
            assert isinstance(round_to_nearest(7, 10), int)
            """),
    problem("fahrenheit_to_celsius", "fahrenheit_to_celsius(f)",
            "Convert a temperature from degrees Fahrenheit to degrees Celsius.",
            """
            def fahrenheit_to_celsius(f):
                return (f - 32) * 5 / 9
            """, """
            assert fahrenheit_to_celsius(32) == 0
            assert fahrenheit_to_celsius(212) == 100
            assert fahrenheit_to_celsius(-40) == -40
            assert fahrenheit_to_celsius(50) == 10
            assert abs(fahrenheit_to_celsius(100) - 37.7778) < 0.001
            """),
    problem("percent_change", "percent_change(old, new)",
            "Return the change from old to new as a percentage of old (old is not zero), e.g. from 50 to 75 is 50.0.",
            """
            def percent_change(old, new):
                return (new - old) / old * 100
            """, """
            assert percent_change(50, 75) == 50.0
            assert percent_change(200, 150) == -25.0
            assert percent_change(10, 10) == 0
            assert percent_change(4, 5) == 25.0
            assert percent_change(3, 4) > 33.3
            """),
    problem("sign", "sign(x)",
            "Return 1 if the number x is positive, -1 if it is negative, and 0 if it is zero.",
            """
            def sign(x):
                if x > 0:
                    return 1
                if x < 0:
                    return -1
                return 0
            """, """
            assert sign(5) == 1
            assert sign(-3) == -1
            assert sign(0) == 0
            assert sign(0.5) == 1
            assert sign(-0.5) == -1
            """),
    problem("is_power_of_two", "is_power_of_two(n)",
            "Return True if the integer n is a power of two (1, 2, 4, 8, ...), otherwise False.",
            """
            def is_power_of_two(n):
                return n > 0 and (n & (n - 1)) == 0
            """, """
            assert is_power_of_two(1) is True
            assert is_power_of_two(2) is True
            assert is_power_of_two(16) is True
            assert is_power_of_two(6) is False
            assert is_power_of_two(0) is False
            assert is_power_of_two(1024) is True
            assert is_power_of_two(12) is False
            assert is_power_of_two(-4) is False
            """),
    problem("triangle_number", "triangle_number(n)",
            "Return the n-th triangle number 1 + 2 + ... + n as an integer (0 for n = 0).",
            """
            def triangle_number(n):
                return n * (n + 1) // 2
            """, """
            assert triangle_number(0) == 0
            assert triangle_number(1) == 1
            assert triangle_number(4) == 10
            assert triangle_number(10) == 55
            assert isinstance(triangle_number(3), int)
            """),
    problem("trailing_zeros", "trailing_zeros(n)",
            "Return how many zero digits the decimal form of the positive integer n ends with.",
            """
            def trailing_zeros(n):
                digits = str(n)
                return len(digits) - len(digits.rstrip('0'))
            """, """
            assert trailing_zeros(100) == 2
            assert trailing_zeros(7) == 0
            assert trailing_zeros(1050) == 1
            assert trailing_zeros(1000000) == 6
            assert trailing_zeros(10) == 1
            """),
    problem("product_of_digits", "product_of_digits(n)",
            "Return the product of the decimal digits of the non-negative integer n.",
            """
            def product_of_digits(n):
                result = 1
                for d in str(n):
                    result *= int(d)
                return result
            """, """
            assert product_of_digits(123) == 6
            assert product_of_digits(0) == 0
            assert product_of_digits(5) == 5
            assert product_of_digits(999) == 729
            assert product_of_digits(101) == 0
            assert product_of_digits(22) == 4
            """),
    problem("mean_absolute_deviation", "mean_absolute_deviation(numbers)",
            "Return the mean of the absolute differences between each number of the non-empty list numbers and the "
            "list's mean.",
            """
            def mean_absolute_deviation(numbers):
                mean = sum(numbers) / len(numbers)
                return sum(abs(x - mean) for x in numbers) / len(numbers)
            """, """
            assert mean_absolute_deviation([1, 2, 3, 4]) == 1.0
            assert mean_absolute_deviation([5]) == 0
            assert mean_absolute_deviation([2, 4]) == 1
            assert abs(mean_absolute_deviation([0, 0, 1]) - 4 / 9) < 1e-9
            """),
    problem("is_triangle", "is_triangle(a, b, c)",
            "Return True if three positive lengths a, b and c can form a triangle with positive area (each is less "
            "than the sum of the other two), otherwise False.",
            """
            def is_triangle(a, b, c):
                return a + b > c and a + c > b and b + c > a
            """, """
            assert is_triangle(3, 4, 5) is True
            assert is_triangle(1, 1, 1) is True
            assert is_triangle(1, 2, 3) is False
            assert is_triangle(1, 3, 2) is False
            assert is_triangle(3, 1, 2) is False
            assert is_triangle(1, 10, 12) is False
            assert is_triangle(10, 1, 1) is False
            assert is_triangle(2, 3, 4) is True
            """),
    problem("triangle_type", "triangle_type(a, b, c)",
            "Return 'equilateral' if the side lengths a, b and c of a valid triangle are all equal, 'isosceles' if "
            "exactly two are equal, and 'scalene' otherwise.",
            """
            def triangle_type(a, b, c):
                if a == b == c:
                    return 'equilateral'
                if a == b or b == c or a == c:
                    return 'isosceles'
                return 'scalene'
            """, """
            assert triangle_type(2, 2, 2) == 'equilateral'
            assert triangle_type(2, 2, 3) == 'isosceles'
            assert triangle_type(3, 2, 2) == 'isosceles'
            assert triangle_type(2, 3, 2) == 'isosceles'
            assert triangle_type(3, 4, 5) == 'scalene'
            assert triangle_type(2, 3, 3) == 'isosceles'
            """),
    problem("letter_grade", "letter_grade(score)",
            "Return the letter grade of a score from 0 to 100: 'A' for 90 and above, 'B' for 80 to 89, 'C' for 70 to "
            "79, 'D' for 60 to 69 and 'F' below 60.",
            """
            def letter_grade(score):
                if score >= 90:
                    return 'A'
                if score >= 80:
                    return 'B'
                if score >= 70:
                    return 'C'
                if score >= 60:
                    return 'D'
                return 'F'
            """, """
            assert letter_grade(100) == 'A'
            assert letter_grade(90) == 'A'
            assert letter_grade(89) == 'B'
            assert letter_grade(80) == 'B'
            assert letter_grade(79) == 'C'
            assert letter_grade(70) == 'C'
            assert letter_grade(69) == 'D'
            assert letter_grade(60) == 'D'
            assert letter_grade(59) == 'F'
            assert letter_grade(0) == 'F'
            """),
    problem("fizzbuzz", "fizzbuzz(n)",
            "Return 'FizzBuzz' if the positive integer n is divisible by both 3 and 5, 'Fizz' if only by 3, 'Buzz' if "
            "only by 5, and otherwise n as a string.",
            """
            def fizzbuzz(n):
                if n % 15 == 0:
                    return 'FizzBuzz'
                if n % 3 == 0:
                    return 'Fizz'
                if n % 5 == 0:
                    return 'Buzz'
                return str(n)
            """, """
            assert fizzbuzz(1) == '1'
            assert fizzbuzz(3) == 'Fizz'
            assert fizzbuzz(5) == 'Buzz'
            assert fizzbuzz(15) == 'FizzBuzz'
            assert fizzbuzz(30) == 'FizzBuzz'
            assert fizzbuzz(9) == 'Fizz'
            assert fizzbuzz(10) == 'Buzz'
            assert fizzbuzz(7) == '7'
            assert fizzbuzz(4) == '4'
            """),
    problem("to_roman", "to_roman(n)",
            "Return the integer n from 1 to 3999 written in Roman numerals, e.g. 1994 gives 'MCMXCIV'.",
            """
            def to_roman(n):
                values = [(1000, 'M'), (900, 'CM'), (500, 'D'), (400, 'CD'), (100, 'C'), (90, 'XC'),
                          (50, 'L'), (40, 'XL'), (10, 'X'), (9, 'IX'), (5, 'V'), (4, 'IV'), (1, 'I')]
                out = ''
                for value, letters in values:
                    while n >= value:
                        out += letters
                        n -= value
                return out
            """, """
            assert to_roman(1) == 'I'
            assert to_roman(3) == 'III'
            assert to_roman(4) == 'IV'
            assert to_roman(5) == 'V'
            assert to_roman(9) == 'IX'
            assert to_roman(10) == 'X'
            assert to_roman(40) == 'XL'
            assert to_roman(50) == 'L'
            assert to_roman(90) == 'XC'
            assert to_roman(100) == 'C'
            assert to_roman(400) == 'CD'
            assert to_roman(500) == 'D'
            assert to_roman(900) == 'CM'
            assert to_roman(1000) == 'M'
            assert to_roman(1994) == 'MCMXCIV'
            assert to_roman(3999) == 'MMMCMXCIX'
            """),
    problem("from_roman", "from_roman(s)",
            "Return the integer value of the Roman numeral s (letters I, V, X, L, C, D, M; a letter before a larger "
            "one is subtracted, e.g. 'IX' is 9).",
            """
            def from_roman(s):
                values = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}
                total = 0
                for i, ch in enumerate(s):
                    if i + 1 < len(s) and values[ch] < values[s[i + 1]]:
                        total -= values[ch]
                    else:
                        total += values[ch]
                return total
            """, """
            assert from_roman('III') == 3
            assert from_roman('II') == 2
            assert from_roman('IV') == 4
            assert from_roman('IX') == 9
            assert from_roman('LVIII') == 58
            assert from_roman('XL') == 40
            assert from_roman('XC') == 90
            assert from_roman('CD') == 400
            assert from_roman('D') == 500
            assert from_roman('CM') == 900
            assert from_roman('MCMXCIV') == 1994
            assert from_roman('MMMCMXCIX') == 3999
            """),
    problem("tribonacci", "tribonacci(n)",
            "Return the n-th tribonacci number, where the sequence starts 0, 0, 1 (tribonacci(0) is 0, tribonacci(2) "
            "is 1) and each later number is the sum of the three before it.",
            """
            def tribonacci(n):
                a, b, c = 0, 0, 1
                for _ in range(n):
                    a, b, c = b, c, a + b + c
                return a
            """, """
            assert tribonacci(0) == 0
            assert tribonacci(1) == 0
            assert tribonacci(2) == 1
            assert tribonacci(3) == 1
            assert tribonacci(4) == 2
            assert tribonacci(5) == 4
            assert tribonacci(6) == 7
            assert tribonacci(10) == 81
            """),
    problem("sum_odd_squares", "sum_odd_squares(numbers)",
            "Return the sum of the squares of the odd integers in the list numbers.",
            """
            def sum_odd_squares(numbers):
                return sum(n * n for n in numbers if n % 2 == 1)
            """, """
            assert sum_odd_squares([1, 2, 3]) == 10
            assert sum_odd_squares([]) == 0
            assert sum_odd_squares([2, 4]) == 0
            assert sum_odd_squares([-3]) == 9
            assert sum_odd_squares([5]) == 25
            """),
    problem("simplify_fraction", "simplify_fraction(num, den)",
            "Return the fraction num/den (den is not zero) in lowest terms as a tuple (numerator, denominator) with a "
            "positive denominator.",
            """
            from math import gcd


            def simplify_fraction(num, den):
                g = gcd(num, den)
                if den < 0:
                    g = -g
                return (num // g, den // g)
            """, """
            assert simplify_fraction(2, 4) == (1, 2)
            assert simplify_fraction(6, 3) == (2, 1)
            assert simplify_fraction(-2, 4) == (-1, 2)
            assert simplify_fraction(2, -4) == (-1, 2)
            assert simplify_fraction(0, 5) == (0, 1)
            assert simplify_fraction(-3, -9) == (1, 3)
            assert simplify_fraction(5, 7) == (5, 7)
            assert simplify_fraction(3, -1) == (-3, 1)
            assert [type(x) for x in simplify_fraction(6, -4)] == [int, int]
            """),
    problem("to_base", "to_base(n, base)",
            "Return the non-negative integer n written in base (2 to 16) with the digits 0-9 and a-f, without leading "
            "zeros ('0' for 0).",
            """
            def to_base(n, base):
                digits = '0123456789abcdef'
                if n < base:
                    return digits[n]
                return to_base(n // base, base) + digits[n % base]
            """, """
            assert to_base(0, 2) == '0'
            assert to_base(10, 2) == '1010'
            assert to_base(255, 16) == 'ff'
            assert to_base(8, 8) == '10'
            assert to_base(7, 8) == '7'
            assert to_base(100, 10) == '100'
            assert to_base(16, 16) == '10'
            assert to_base(31, 16) == '1f'
            """),
    problem("sum_range", "sum_range(a, b)",
            "Return the sum of the integers from a to b, both included (a <= b).",
            """
            def sum_range(a, b):
                return sum(range(a, b + 1))
            """, """
            assert sum_range(1, 10) == 55
            assert sum_range(3, 3) == 3
            assert sum_range(-2, 2) == 0
            assert sum_range(0, 1) == 1
            """),
    problem("safe_divide", "safe_divide(a, b)",
            "Return a divided by b, or None if b is zero.",
            """
            def safe_divide(a, b):
                return None if b == 0 else a / b
            """, """
            assert safe_divide(6, 3) == 2
            assert safe_divide(1, 0) is None
            assert safe_divide(0, 5) == 0
            assert safe_divide(7, 2) == 3.5
            assert safe_divide(-6, 3) == -2
            """),
    problem("days_in_month", "days_in_month(year, month)",
            "Return the number of days in the month (1 to 12) of the given year of the Gregorian calendar, where "
            "February has 29 days in leap years.",
            """
            def days_in_month(year, month):
                if month == 2:
                    return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
                return 30 if month in (4, 6, 9, 11) else 31
            """, """
            assert days_in_month(2023, 1) == 31
            assert days_in_month(2023, 2) == 28
            assert days_in_month(2023, 3) == 31
            assert days_in_month(2023, 4) == 30
            assert days_in_month(2023, 5) == 31
            assert days_in_month(2023, 6) == 30
            assert days_in_month(2023, 7) == 31
            assert days_in_month(2023, 8) == 31
            assert days_in_month(2023, 9) == 30
            assert days_in_month(2023, 10) == 31
            assert days_in_month(2023, 11) == 30
            assert days_in_month(2023, 12) == 31
            assert days_in_month(2024, 2) == 29
            assert days_in_month(1900, 2) == 28
            assert days_in_month(2000, 2) == 29
            """),
    problem("digits_of", "digits_of(n)",
            "Return the list of decimal digits of the non-negative integer n, most significant first.",
            """
            def digits_of(n):
                return [int(d) for d in str(n)]
            """, """
            assert digits_of(123) == [1, 2, 3]
            assert digits_of(0) == [0]
            assert digits_of(907) == [9, 0, 7]
            """),
    problem("number_from_digits", "number_from_digits(digits)",
            "Return the integer whose decimal digits, most significant first, are the list digits ([] gives 0).",
            """
            def number_from_digits(digits):
                value = 0
                for d in digits:
                    value = value * 10 + d
                return value
            """, """
            assert number_from_digits([1, 2, 3]) == 123
            assert number_from_digits([]) == 0
            assert number_from_digits([0, 0, 7]) == 7
            assert number_from_digits([9]) == 9
            assert number_from_digits([1, 0]) == 10
            """),
    problem("prime_factors", "prime_factors(n)",
            "Return the prime factors of the integer n >= 2 in increasing order, each repeated as often as it divides "
            "n, e.g. 12 gives [2, 2, 3].",
            """
            def prime_factors(n):
                factors = []
                d = 2
                while n > 1:
                    while n % d == 0:
                        factors.append(d)
                        n //= d
                    d += 1
                return factors
            """, """
            assert prime_factors(12) == [2, 2, 3]
            assert prime_factors(2) == [2]
            assert prime_factors(13) == [13]
            assert prime_factors(100) == [2, 2, 5, 5]
            assert prime_factors(27) == [3, 3, 3]
            assert prime_factors(30) == [2, 3, 5]
            assert prime_factors(3 ** 40) == [3] * 40
            """),
    problem("count_bits", "count_bits(n)",
            "Return how many 1 digits the binary form of the non-negative integer n has.",
            """
            def count_bits(n):
                return bin(n).count('1')
            """, """
            assert count_bits(0) == 0
            assert count_bits(1) == 1
            assert count_bits(7) == 3
            assert count_bits(8) == 1
            assert count_bits(255) == 8
            """),
]

ALGORITHMS: list[Problem] = [
    problem("binary_search", "binary_search(sorted_items, target)",
            "Return the index of target in the increasing list sorted_items by binary search, or -1 if it is not "
            "there.",
            """
            def binary_search(sorted_items, target):
                low, high = 0, len(sorted_items) - 1
                while low <= high:
                    mid = (low + high) // 2
                    if sorted_items[mid] < target:
                        low = mid + 1
                    elif sorted_items[mid] > target:
                        high = mid - 1
                    else:
                        return mid
                return -1
            """, """
            assert binary_search([1, 3, 5, 7, 9], 7) == 3
            assert binary_search([1, 3, 5, 7, 9], 1) == 0
            assert binary_search([1, 3, 5, 7, 9], 9) == 4
            assert binary_search([1, 3, 5, 7, 9], 4) == -1
            assert binary_search([1, 3, 5, 7, 9], 10) == -1
            assert binary_search([1, 3, 5, 7, 9], 0) == -1
            assert binary_search([], 3) == -1
            assert binary_search([2], 2) == 0
            assert binary_search([2], 3) == -1
            assert binary_search([1, 2, 3, 4, 5, 6], 6) == 5
            assert binary_search([1, 2, 3, 4, 5, 6], 1) == 0
            assert [binary_search([1, 2, 3, 4, 5, 6], t) for t in range(8)] == [-1, 0, 1, 2, 3, 4, 5, -1]
            assert [binary_search([1, 3, 5, 7, 9], t) for t in range(11)] == [-1, 0, -1, 1, -1, 2, -1, 3, -1, 4, -1]
            """),
    problem("merge_sorted", "merge_sorted(a, b)",
            "Merge the increasing lists a and b into one increasing list, without calling sort or sorted.",
            """
            def merge_sorted(a, b):
                out = []
                i = j = 0
                while i < len(a) and j < len(b):
                    if a[i] <= b[j]:
                        out.append(a[i])
                        i += 1
                    else:
                        out.append(b[j])
                        j += 1
                return out + a[i:] + b[j:]
            """, """
            assert merge_sorted([1, 3, 5], [2, 4, 6]) == [1, 2, 3, 4, 5, 6]
            assert merge_sorted([], [1, 2]) == [1, 2]
            assert merge_sorted([1, 2], []) == [1, 2]
            assert merge_sorted([], []) == []
            assert merge_sorted([1, 1], [1]) == [1, 1, 1]
            assert merge_sorted([5], [1, 2, 3]) == [1, 2, 3, 5]
            assert merge_sorted([1, 2, 3], [4]) == [1, 2, 3, 4]
            """),
    problem("is_sorted", "is_sorted(numbers)",
            "Return True if every number of the list numbers is at least the one before it, otherwise False.",
            """
            def is_sorted(numbers):
                return all(a <= b for a, b in zip(numbers, numbers[1:]))
            """, """
            assert is_sorted([1, 2, 2, 3]) is True
            assert is_sorted([3, 1]) is False
            assert is_sorted([]) is True
            assert is_sorted([5]) is True
            assert is_sorted([1, 3, 2]) is False
            assert is_sorted([2, 2]) is True
            """),
    problem("two_sum", "two_sum(numbers, target)",
            "Return a tuple (i, j) of positions i < j of the list numbers with numbers[i] + numbers[j] == target, "
            "choosing the smallest j and then the smallest i, or None if there is no such pair.",
            """
            def two_sum(numbers, target):
                seen = {}
                for j, n in enumerate(numbers):
                    if target - n in seen:
                        return (seen[target - n], j)
                    seen.setdefault(n, j)
                return None
            """, """
            assert two_sum([2, 7, 11, 15], 9) == (0, 1)
            assert two_sum([3, 2, 4], 6) == (1, 2)
            assert two_sum([3, 3], 6) == (0, 1)
            assert two_sum([1, 2], 7) is None
            assert two_sum([], 0) is None
            assert two_sum([1, 1, 1], 2) == (0, 1)
            assert two_sum([5, 1, 4], 9) == (0, 2)
            """),
    problem("transpose", "transpose(matrix)",
            "Return the transpose of the matrix given as a list of equal-length rows: row i of the result is column i "
            "of matrix.",
            """
            def transpose(matrix):
                return [list(row) for row in zip(*matrix)]
            """, """
            assert transpose([[1, 2, 3], [4, 5, 6]]) == [[1, 4], [2, 5], [3, 6]]
            assert transpose([[1]]) == [[1]]
            assert transpose([]) == []
            assert transpose([[1, 2]]) == [[1], [2]]
            """),
    problem("add_matrices", "add_matrices(a, b)",
            "Return the element-wise sum of two matrices a and b of the same shape, given as lists of rows.",
            """
            def add_matrices(a, b):
                return [[x + y for x, y in zip(row_a, row_b)] for row_a, row_b in zip(a, b)]
            """, """
            assert add_matrices([[1, 2], [3, 4]], [[10, 20], [30, 40]]) == [[11, 22], [33, 44]]
            assert add_matrices([], []) == []
            assert add_matrices([[1]], [[-1]]) == [[0]]
            """),
    problem("identity_matrix", "identity_matrix(n)",
            "Return the n by n identity matrix as a list of rows: 1 on the diagonal and 0 everywhere else.",
            """
            def identity_matrix(n):
                return [[1 if i == j else 0 for j in range(n)] for i in range(n)]
            """, """
            assert identity_matrix(0) == []
            assert identity_matrix(1) == [[1]]
            assert identity_matrix(2) == [[1, 0], [0, 1]]
            assert identity_matrix(3) == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
            """),
    problem("diagonal_sum", "diagonal_sum(matrix)",
            "Return the sum of the main diagonal (top left to bottom right) of a square matrix given as a list of rows "
            "(0 for an empty matrix).",
            """
            def diagonal_sum(matrix):
                return sum(matrix[i][i] for i in range(len(matrix)))
            """, """
            assert diagonal_sum([[1, 2], [3, 4]]) == 5
            assert diagonal_sum([[5]]) == 5
            assert diagonal_sum([]) == 0
            assert diagonal_sum([[1, 2, 3], [4, 5, 6], [7, 8, 9]]) == 15
            """),
    problem("rotate_matrix", "rotate_matrix(matrix)",
            "Return the square matrix (a list of rows) rotated 90 degrees clockwise, as a new list of lists.",
            """
            def rotate_matrix(matrix):
                return [list(row) for row in zip(*matrix[::-1])]
            """, """
            assert rotate_matrix([[1, 2], [3, 4]]) == [[3, 1], [4, 2]]
            assert rotate_matrix([[1]]) == [[1]]
            assert rotate_matrix([]) == []
            assert rotate_matrix([[1, 2, 3], [4, 5, 6], [7, 8, 9]]) == [[7, 4, 1], [8, 5, 2], [9, 6, 3]]
            """),
    problem("matrix_multiply", "matrix_multiply(a, b)",
            "Return the matrix product of a (m rows of n numbers) and b (n rows of p numbers), as m rows of p numbers.",
            """
            def matrix_multiply(a, b):
                return [[sum(x * y for x, y in zip(row, column)) for column in zip(*b)] for row in a]
            """, """
            assert matrix_multiply([[1, 2], [3, 4]], [[5, 6], [7, 8]]) == [[19, 22], [43, 50]]
            assert matrix_multiply([[1, 2, 3]], [[1], [2], [3]]) == [[14]]
            assert matrix_multiply([[2]], [[3, 4]]) == [[6, 8]]
            assert matrix_multiply([[1, 0], [0, 1]], [[4, 5], [6, 7]]) == [[4, 5], [6, 7]]
            """),
    problem("pascal_row", "pascal_row(n)",
            "Return row n of Pascal's triangle as a list, where row 0 is [1] and row 2 is [1, 2, 1].",
            """
            def pascal_row(n):
                row = [1]
                for _ in range(n):
                    row = [a + b for a, b in zip([0] + row, row + [0])]
                return row
            """, """
            assert pascal_row(0) == [1]
            assert pascal_row(1) == [1, 1]
            assert pascal_row(2) == [1, 2, 1]
            assert pascal_row(4) == [1, 4, 6, 4, 1]
            assert pascal_row(5) == [1, 5, 10, 10, 5, 1]
            """),
    problem("fibonacci_list", "fibonacci_list(n)",
            "Return a list of the first n Fibonacci numbers, starting 0, 1, 1, 2.",
            """
            def fibonacci_list(n):
                numbers = []
                a, b = 0, 1
                for _ in range(n):
                    numbers.append(a)
                    a, b = b, a + b
                return numbers
            """, """
            assert fibonacci_list(0) == []
            assert fibonacci_list(1) == [0]
            assert fibonacci_list(2) == [0, 1]
            assert fibonacci_list(7) == [0, 1, 1, 2, 3, 5, 8]
            """),
    problem("climb_stairs", "climb_stairs(n)",
            "Return in how many different ways a staircase of n steps can be climbed taking 1 or 2 steps at a time (1 "
            "way for n = 0).",
            """
            def climb_stairs(n):
                a, b = 1, 1
                for _ in range(n):
                    a, b = b, a + b
                return a
            """, """
            assert climb_stairs(0) == 1
            assert climb_stairs(1) == 1
            assert climb_stairs(2) == 2
            assert climb_stairs(3) == 3
            assert climb_stairs(5) == 8
            assert climb_stairs(10) == 89
            """),
    problem("coin_change_ways", "coin_change_ways(amount, coins)",
            "Return in how many different ways amount can be made from coins whose values are in the list coins "
            "(distinct positive values, each usable any number of times); the order of the coins does not matter.",
            """
            def coin_change_ways(amount, coins):
                ways = [1] + [0] * amount
                for coin in coins:
                    for total in range(coin, amount + 1):
                        ways[total] += ways[total - coin]
                return ways[amount]
            """, """
            assert coin_change_ways(4, [1, 2, 3]) == 4
            assert coin_change_ways(0, [1, 2]) == 1
            assert coin_change_ways(3, [2]) == 0
            assert coin_change_ways(10, [5, 2, 3]) == 4
            assert coin_change_ways(5, [1]) == 1
            assert coin_change_ways(11, [5, 10]) == 0
            assert coin_change_ways(100, [1, 5, 10, 25, 50]) == 292
            """),
    problem("min_coins", "min_coins(amount, coins)",
            "Return the smallest number of coins with values from the list coins (positive, each usable any number of "
            "times) that add up to amount, or -1 if it cannot be made.",
            """
            def min_coins(amount, coins):
                best = [0] + [None] * amount
                for total in range(1, amount + 1):
                    options = [best[total - c] for c in coins if c <= total and best[total - c] is not None]
                    if options:
                        best[total] = min(options) + 1
                return best[amount] if best[amount] is not None else -1
            """, """
            assert min_coins(11, [1, 2, 5]) == 3
            assert min_coins(3, [2]) == -1
            assert min_coins(0, [1]) == 0
            assert min_coins(6, [1, 3, 4]) == 2
            assert min_coins(7, [2, 4]) == -1
            assert min_coins(3, [3]) == 1
            assert min_coins(1, [1]) == 1
            """),
    problem("lcs_length", "lcs_length(a, b)",
            "Return the length of the longest common subsequence of the strings a and b (characters in the same order, "
            "not necessarily adjacent).",
            """
            def lcs_length(a, b):
                rows = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
                for i in range(1, len(a) + 1):
                    for j in range(1, len(b) + 1):
                        if a[i - 1] == b[j - 1]:
                            rows[i][j] = rows[i - 1][j - 1] + 1
                        else:
                            rows[i][j] = max(rows[i - 1][j], rows[i][j - 1])
                return rows[len(a)][len(b)]
            """, """
            assert lcs_length('abcde', 'ace') == 3
            assert lcs_length('abc', 'abc') == 3
            assert lcs_length('abc', 'def') == 0
            assert lcs_length('', 'abc') == 0
            assert lcs_length('abcbdab', 'bdcaba') == 4
            assert lcs_length('a', 'a') == 1
            assert lcs_length('ab', 'ba') == 1
            assert lcs_length('xaybz', 'ab') == 2
            assert lcs_length('a', 'aa') == 1
            assert lcs_length('aa', 'a') == 1
            """),
    problem("edit_distance", "edit_distance(a, b)",
            "Return the Levenshtein distance between the strings a and b: the fewest single-character insertions, "
            "deletions or substitutions that turn a into b.",
            """
            def edit_distance(a, b):
                previous = list(range(len(b) + 1))
                for i, ca in enumerate(a, 1):
                    current = [i]
                    for j, cb in enumerate(b, 1):
                        current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
                    previous = current
                return previous[-1]
            """, """
            assert edit_distance('kitten', 'sitting') == 3
            assert edit_distance('', 'abc') == 3
            assert edit_distance('abc', '') == 3
            assert edit_distance('abc', 'abc') == 0
            assert edit_distance('flaw', 'lawn') == 2
            assert edit_distance('a', 'b') == 1
            assert edit_distance('ab', 'ba') == 2
            assert edit_distance('abc', 'ab') == 1
            assert edit_distance('ab', 'abc') == 1
            """),
    problem("is_subsequence", "is_subsequence(sub, text)",
            "Return True if the characters of the string sub appear in the string text in the same order (not "
            "necessarily next to each other), otherwise False.",
            """
            def is_subsequence(sub, text):
                position = 0
                for ch in text:
                    if position < len(sub) and sub[position] == ch:
                        position += 1
                return position == len(sub)
            """, """
            assert is_subsequence('ace', 'abcde') is True
            assert is_subsequence('aec', 'abcde') is False
            assert is_subsequence('', 'abc') is True
            assert is_subsequence('abc', '') is False
            assert is_subsequence('abc', 'abc') is True
            assert is_subsequence('aa', 'a') is False
            assert is_subsequence('b', 'abc') is True
            """),
    problem("max_profit", "max_profit(prices)",
            "Given a list of daily prices, return the largest profit from buying on one day and selling on a later day "
            "(0 if no profit is possible).",
            """
            def max_profit(prices):
                if not prices:
                    return 0
                lowest = prices[0]
                best = 0
                for price in prices[1:]:
                    best = max(best, price - lowest)
                    lowest = min(lowest, price)
                return best
            """, """
            assert max_profit([7, 1, 5, 3, 6, 4]) == 5
            assert max_profit([7, 6, 4, 3, 1]) == 0
            assert max_profit([]) == 0
            assert max_profit([1, 2]) == 1
            assert max_profit([2, 1, 4]) == 3
            assert max_profit([3, 3]) == 0
            assert max_profit([2, 4, 1, 3]) == 2
            """),
    problem("count_inversions", "count_inversions(numbers)",
            "Return how many pairs of positions i < j in the list numbers have numbers[i] > numbers[j].",
            """
            def count_inversions(numbers):
                return sum(1 for i in range(len(numbers)) for j in range(i) if numbers[j] > numbers[i])
            """, """
            assert count_inversions([1, 2, 3]) == 0
            assert count_inversions([3, 2, 1]) == 3
            assert count_inversions([2, 4, 1, 3, 5]) == 3
            assert count_inversions([]) == 0
            assert count_inversions([1, 1]) == 0
            assert count_inversions([2, 1]) == 1
            """),
    problem("find_missing", "find_missing(numbers)",
            "The list numbers holds every integer from 0 to len(numbers) except one, in any order: return the missing "
            "one, as an integer.",
            """
            def find_missing(numbers):
                n = len(numbers)
                return n * (n + 1) // 2 - sum(numbers)
            """, """
            assert find_missing([3, 0, 1]) == 2
            assert find_missing([0, 1]) == 2
            assert find_missing([1]) == 0
            assert find_missing([0]) == 1
            assert find_missing([9, 6, 4, 2, 3, 5, 7, 0, 1]) == 8
            assert isinstance(find_missing([0, 2]), int)
            """),
    problem("is_valid_ipv4", "is_valid_ipv4(s)",
            "Return True if the string s is an IPv4 address: four decimal numbers from 0 to 255 separated by dots, "
            "each without leading zeros (a lone 0 is fine), otherwise False.",
            """
            def is_valid_ipv4(s):
                parts = s.split('.')
                if len(parts) != 4:
                    return False
                for part in parts:
                    if not part.isdigit() or int(part) > 255:
                        return False
                    if len(part) > 1 and part[0] == '0':
                        return False
                return True
            """, """
            assert is_valid_ipv4('192.168.1.1') is True
            assert is_valid_ipv4('255.255.255.255') is True
            assert is_valid_ipv4('0.0.0.0') is True
            assert is_valid_ipv4('10.0.0.255') is True
            assert is_valid_ipv4('256.1.1.1') is False
            assert is_valid_ipv4('1.2.3') is False
            assert is_valid_ipv4('1.2.3.4.5') is False
            assert is_valid_ipv4('01.2.3.4') is False
            assert is_valid_ipv4('a.b.c.d') is False
            assert is_valid_ipv4('1..2.3') is False
            assert is_valid_ipv4('1.2.3.-4') is False
            """),
    problem("is_strong_password", "is_strong_password(p)",
            "Return True if the string p has at least 8 characters, at least one digit, one upper-case letter and one "
            "lower-case letter, otherwise False.",
            """
            def is_strong_password(p):
                return (len(p) >= 8 and any(c.isdigit() for c in p) and any(c.isupper() for c in p)
                        and any(c.islower() for c in p))
            """, """
            assert is_strong_password('Passw0rd') is True
            assert is_strong_password('Abcdefg1') is True
            assert is_strong_password('password') is False
            assert is_strong_password('PASSWORD1') is False
            assert is_strong_password('Pass1') is False
            assert is_strong_password('passw0rd') is False
            assert is_strong_password('Password') is False
            assert is_strong_password('Abcdef1') is False
            """),
    problem("format_duration", "format_duration(seconds)",
            "Format a non-negative whole number of seconds as 'H:MM:SS' (hours not padded, minutes and seconds with "
            "two digits), e.g. 3661 gives '1:01:01'.",
            """
            def format_duration(seconds):
                hours = seconds // 3600
                minutes = seconds % 3600 // 60
                secs = seconds % 60
                return f'{hours}:{minutes:02d}:{secs:02d}'
            """, """
            assert format_duration(0) == '0:00:00'
            assert format_duration(59) == '0:00:59'
            assert format_duration(60) == '0:01:00'
            assert format_duration(3599) == '0:59:59'
            assert format_duration(3600) == '1:00:00'
            assert format_duration(3661) == '1:01:01'
            assert format_duration(86399) == '23:59:59'
            assert format_duration(90061) == '25:01:01'
            """),
    problem("time_to_minutes", "time_to_minutes(hhmm)",
            "Return the number of minutes since midnight of a time written 'HH:MM' in 24-hour form.",
            """
            def time_to_minutes(hhmm):
                hours, minutes = hhmm.split(':')
                return int(hours) * 60 + int(minutes)
            """, """
            assert time_to_minutes('00:00') == 0
            assert time_to_minutes('01:30') == 90
            assert time_to_minutes('23:59') == 1439
            assert time_to_minutes('12:05') == 725
            """),
    problem("string_to_int", "string_to_int(s)",
            "Return the integer written in the string s: an optional '+' or '-' followed by decimal digits, without "
            "calling int.",
            """
            def string_to_int(s):
                sign = 1
                if s[0] in '+-':
                    if s[0] == '-':
                        sign = -1
                    s = s[1:]
                value = 0
                for ch in s:
                    value = value * 10 + ord(ch) - ord('0')
                return sign * value
            """, """
            assert string_to_int('123') == 123
            assert string_to_int('-45') == -45
            assert string_to_int('+7') == 7
            assert string_to_int('0') == 0
            assert string_to_int('-0') == 0
            assert string_to_int('1000') == 1000
            """),
    problem("average_word_length", "average_word_length(text)",
            "Return the mean length of the whitespace-separated words of text, or 0 if it has no words.",
            """
            def average_word_length(text):
                words = text.split()
                if not words:
                    return 0
                return sum(len(word) for word in words) / len(words)
            """, """
            assert average_word_length('hi there') == 3.5
            assert average_word_length('') == 0
            assert average_word_length('abc') == 3
            assert average_word_length('a bb ccc') == 2.0
            assert average_word_length('  ') == 0
            """),
]

PROBLEMS: list[Problem] = STRINGS + LISTS + DICTS + NUMBERS + ALGORITHMS
