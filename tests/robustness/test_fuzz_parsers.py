"""Fuzzing the text parsers a client reaches: whatever the text, they return a value (no exception),
and each call finishes within hypothesis' deadline."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from modules.infotext.parse import parse_infotext
from modules.pipeline.prompt_syntax import parse_emphasis, prompt_schedule, split_composable

# Prompt-syntax characters are drawn often, so brackets, weights and edits meet each other.
SYNTAX = st.text(alphabet=st.sampled_from(list("()[]{}:|,.0123456789eE-+ abAND BREAK\\\n")) | st.characters(),
                 max_size=300)
FUZZ = settings(max_examples=200, deadline=500)


@FUZZ
@given(prompt=SYNTAX, steps=st.integers(1, 150))
def test_the_prompt_schedule_parses_any_text(prompt: str, steps: int) -> None:
    schedule = prompt_schedule(prompt, steps)
    assert schedule and all(isinstance(text, str) for _, text in schedule)
    assert schedule[-1][0] == steps  # the last entry holds until the final step


@FUZZ
@given(prompt=SYNTAX)
def test_emphasis_and_composable_parse_any_text(prompt: str) -> None:
    assert all(isinstance(text, str) and isinstance(weight, float) for text, weight in parse_emphasis(prompt))
    assert all(isinstance(part, str) for part, _ in split_composable(prompt))


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("Steps: 1e309,NaN\"\\ CFGscaleSize:x\n")) | st.characters(),
                    max_size=300))
def test_the_infotext_parser_reads_any_text(text: str) -> None:
    fields = parse_infotext(text)
    assert isinstance(fields, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


def test_deep_nesting_is_parsed_not_a_recursion_error() -> None:
    deep = "(" * 100_000 + "x" + ")" * 100_000
    assert prompt_schedule(deep, 20)[-1][0] == 20
    assert prompt_schedule("[" * 100_000, 20)[-1][0] == 20
