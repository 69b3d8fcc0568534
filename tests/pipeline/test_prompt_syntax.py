"""The prompt language as pure functions: emphasis runs, per-step schedules, AND, BREAK, comments.

Expected values are A1111's documented examples (a1111-conventions §6 and the
examples its prompt parser documents), written out by hand.
"""

from __future__ import annotations

import random

import pytest

from modules.pipeline.prompt_syntax import (
    BREAK_RUN, Emphasis, parse_emphasis, prompt_schedule, split_composable, strip_comments, text_at_step,
)


def approx_runs(runs):
    return [(text, pytest.approx(weight, abs=1e-9)) for text, weight in runs]


EMPHASIS_CASES = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("((x))", [("x", 1.21)]),
    ("[x]", [("x", 1 / 1.1)]),
    ("[[x]]", [("x", 1 / 1.21)]),
    ("(x:1.3)", [("x", 1.3)]),
    ("(x: 0.5 )", [("x", 0.5)]),
    ("((x:1.3))", [("x", 1.43)]),
    ("[(x:2)]", [("x", 2 / 1.1)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("[unbalanced", [("unbalanced", 1 / 1.1)]),
    ("a)b]c", [("a)b]c", 1.0)]),  # closing brackets with nothing open are text
    ("x:1.2)", [("x:1.2)", 1.0)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("\\\\back", [("\\back", 1.0)]),
    ("a \\q b", [("a q b", 1.0)]),  # a backslash that escapes nothing is dropped, as A1111 does
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("(a:b)", [("a:b", 1.1)]),  # ":" without a number is text
    ("(x:1.2.3)", [("x:1.2.3)", 1.1)]),  # not a number: text (A1111 raises here)
    ("", [("", 1.0)]),
    ("()", [("", 1.0)]),
    (
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [("a ", 1.0), ("house", 1.573), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
         (", sun, ", 1.1), ("sky", 1.4641), (".", 1.1)],
    ),
    ("a BREAK b", [("a", 1.0), BREAK_RUN, ("b", 1.0)]),
    ("(a BREAK b)", [("a", 1.1), BREAK_RUN, ("b", 1.1)]),
    ("a BREAK BREAK b", [("a", 1.0), BREAK_RUN, ("", 1.0), BREAK_RUN, ("b", 1.0)]),
    ("aBREAKb break", [("aBREAKb break", 1.0)]),  # a whole uppercase word only
]


@pytest.mark.parametrize("text, expected", EMPHASIS_CASES)
def test_emphasis_runs(text: str, expected) -> None:
    assert parse_emphasis(text) == approx_runs(expected)


def test_emphasis_mode_none_keeps_brackets_as_text() -> None:
    assert parse_emphasis("a (b:1.5) [c]", Emphasis.NONE) == [("a (b:1.5) [c]", 1.0)]
    assert parse_emphasis("a BREAK b", "None") == [("a", 1.0), BREAK_RUN, ("b", 1.0)]


def test_emphasis_mode_ignore_still_removes_brackets() -> None:
    # Ignore parses like Original (the weights are dropped at encoding time).
    assert [text for text, _ in parse_emphasis("a (b:1.5)", Emphasis.IGNORE)] == ["a ", "b"]


SCHEDULE_CASES = [
    ("test", [(10, "test")]),
    ("a [b:3]", [(3, "a "), (10, "a b")]),
    ("a [b: 3]", [(3, "a "), (10, "a b")]),
    ("a [[[b]]:2]", [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", [(3, ""), (10, "(a:2)")]),
    ("a [b : c : 1] d", [(1, "a b  d"), (10, "a  c  d")]),
    ("a[b:[c:d:2]:1]e", [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("a [unbalanced", [(10, "a [unbalanced")]),
    ("a [b:.5] c", [(5, "a  c"), (10, "a b c")]),
    ("a [b:0.25] c", [(2, "a  c"), (10, "a b c")]),
    ("[cat:dog:0.5]", [(5, "cat"), (10, "dog")]),
    ("[cat::4]", [(4, "cat"), (10, "")]),
    ("[cat:dog:25]", [(10, "cat")]),  # beyond the last step: never switches
    ("[cat:dog:0]", [(10, "dog")]),
    ("[cat:dog:-3]", [(10, "dog")]),
    ("[cat:dog:1e0]", [(1, "cat"), (10, "dog")]),
    ("a [{b|d{:.5] c", [(5, "a  c"), (10, "a {b|d{ c")]),
    ("((a][:b:c [d:3]", [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("[a:b:c:3]", [(10, "[a:b:c:3]")]),  # too many parts: plain text
    ("[a:b]", [(10, "[a:b]")]),
    ("(x:[a:b:2])", [(2, "(x:a)"), (10, "(x:b)")]),
    ("([a:b:2]:1.5)", [(2, "(a:1.5)"), (10, "(b:1.5)")]),
    ("\\[a:b:2\\]", [(10, "\\[a:b:2\\]")]),  # escaped brackets edit nothing
    ("a \\", [(10, "a \\")]),  # a trailing backslash: the grammar rejects it, used verbatim
    ("[a|(b:1.1)]", [(s, "a" if s % 2 else "(b:1.1)") for s in range(1, 11)]),
    ("[fe|]male", [(s, "female" if s % 2 else "male") for s in range(1, 11)]),
    ("[fe|||]male", [(s, "female" if s % 4 == 1 else "male") for s in range(1, 11)]),
    ("[a|b|c]", [(s, "abc"[(s - 1) % 3]) for s in range(1, 11)]),
    ("[[a|b]:c:5]", [(s, ("a", "b")[(s - 1) % 2] if s <= 5 else "c") for s in range(1, 11)]),
]


@pytest.mark.parametrize("prompt, expected", SCHEDULE_CASES)
def test_prompt_schedule(prompt: str, expected) -> None:
    assert prompt_schedule(prompt, 10) == expected


def test_hires_pass_fractions_and_counts_address_the_second_pass() -> None:
    # First pass 10 steps, second pass 10: 0.5 is over before the second pass, 1.5 is its middle.
    assert prompt_schedule("a [b:.5] c", 10, 10) == [(10, "a b c")]
    assert prompt_schedule("a [b:1.5] c", 10, 10) == [(5, "a  c"), (10, "a b c")]
    assert prompt_schedule("a [b:13] c", 10, 8) == [(3, "a  c"), (8, "a b c")]
    assert prompt_schedule("a [b:1.25] c", 20, 8) == [(2, "a  c"), (8, "a b c")]


def test_text_at_step_uses_the_first_entry_not_yet_ended() -> None:
    schedule = prompt_schedule("[a:b:0.5]", 20)  # [(10, "a"), (20, "b")]
    assert [text_at_step(schedule, k) for k in (0, 9, 10, 11, 19)] == ["a", "a", "a", "b", "b"]


@pytest.mark.parametrize("prompt, expected", [
    ("a cat", [("a cat", 1.0)]),
    ("a cat :1.2 AND a dog", [("a cat", 1.2), (" a dog", 1.0)]),
    ("a AND b:0.5 AND c : -1", [("a", 1.0), (" b", 0.5), (" c", -1.0)]),
    ("ANDROID and ANDy", [("ANDROID and ANDy", 1.0)]),  # AND only as a whole word
    ("(x:1.2) AND [a:b:3]", [("(x:1.2)", 1.0), (" [a:b:3]", 1.0)]),
    ("a AND", [("a", 1.0), ("", 1.0)]),
])
def test_and_splits_composable_sub_prompts(prompt: str, expected) -> None:
    assert split_composable(prompt) == expected


@pytest.mark.parametrize("text, expected", [
    ("a cat # not this", "a cat "),
    ("# whole line\na cat", "a cat"),
    ("a\n# gone\nb # tail\nc", "a\nb \nc"),
    ("no comment", "no comment"),
])
def test_comments_are_stripped(text: str, expected: str) -> None:
    assert strip_comments(text) == expected


ALPHABET = "[]()|:\\ab .5,0123AND BREAK#\n"


def random_prompts(count: int, seed: int):
    rng = random.Random(seed)
    for _ in range(count):
        yield "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40)))


def test_no_input_crashes_the_parsers() -> None:
    for prompt in random_prompts(3000, seed=1234):
        for part, weight in split_composable(strip_comments(prompt)):
            assert isinstance(weight, float)
            for steps, hires in ((10, None), (7, 5)):
                schedule = prompt_schedule(part, steps, hires)
                total = hires or steps
                ends = [end for end, _ in schedule]
                assert ends == sorted(set(ends)) and ends[-1] == total and ends[0] >= 1
                for _, text in schedule:
                    runs = parse_emphasis(text)
                    assert runs and all(isinstance(t, str) and isinstance(w, float) for t, w in runs)
                    assert all(w > 0 for t, w in runs if (t, w) != BREAK_RUN)


def test_prompts_without_syntax_are_unchanged_at_every_step() -> None:
    rng = random.Random(7)
    for _ in range(500):
        prompt = "".join(rng.choice("abc ,.0123-_") for _ in range(rng.randint(0, 30)))
        assert prompt_schedule(prompt, 12) == [(12, prompt)]


def test_deep_nesting_is_fast_and_safe() -> None:
    assert prompt_schedule("[a|" * 300 + "x", 10) == [(10, "[a|" * 300 + "x")]
    assert prompt_schedule("(" * 3000 + "x", 10) == [(10, "(" * 3000 + "x")]
    assert parse_emphasis("(" * 50 + "x")[0][1] == pytest.approx(1.1**50)
