"""The prompt language, as pure functions on strings (a1111-conventions §6).

A prompt goes through these stages, in this order:

1. ``strip_comments``: text after ``#`` to the end of the line is dropped.
2. ``split_composable``: ``AND`` separates sub-prompts, each with an optional
   trailing ``:weight`` (composable diffusion, Liu et al. 2022).
3. ``prompt_schedule``: prompt editing ``[from:to:when]``, ``[to:when]``,
   ``[from::when]`` and alternation ``[a|b|c]`` become one text per step range.
4. ``parse_emphasis``: ``(x)``, ``[x]``, ``(x:1.3)`` and ``BREAK`` become
   (text, weight) runs that the tokenizer sees.

Step semantics follow A1111: a schedule is a list of ``(end_step, text)``;
the text for a 0-based sampler step k is the first entry with ``k <= end_step``.
``when`` with a dot is a fraction of the steps, without one a step count; on a
hires pass fractions 1.x and counts above the first pass's steps address the
second pass. A prompt the editing grammar does not accept (a trailing
backslash, nesting too deep to parse) is used verbatim at every step, as
A1111 does with prompts its grammar rejects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Union

BREAK_RUN = ("BREAK", -1.0)  # how a BREAK appears among the (text, weight) runs
ROUND_FACTOR = 1.1
SQUARE_FACTOR = 1 / 1.1

_AND = re.compile(r"\bAND\b")
_TRAILING_WEIGHT = re.compile(r"^(.*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$", re.DOTALL)
_BREAK = re.compile(r"\s*\bBREAK\b\s*")
_NUMBER = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*")
# One emphasis token: an escape, a lone backslash, an opening bracket, ":weight)",
# a closing bracket, a run of ordinary text, or a lone colon.
_EMPHASIS_TOKEN = re.compile(
    r"\\[()\[\]\\]|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()\[\]:]+|:"
)


class Emphasis(str, Enum):
    """The ``emphasis`` setting: what bracket weights do to the encoding."""

    ORIGINAL = "Original"  # scale each token's vector, then restore the chunk's mean
    NO_NORM = "No norm"  # scale only
    IGNORE = "Ignore"  # brackets are parsed away, weights are not applied
    NONE = "None"  # brackets are ordinary text


# ----- comments and AND -----
def strip_comments(text: str) -> str:
    """Drop ``# ...`` to the end of each line; a line that starts with ``#`` disappears entirely."""
    kept = [line.split("#", 1)[0] for line in text.split("\n") if not line.startswith("#")]
    return "\n".join(kept)


def split_composable(prompt: str) -> list[tuple[str, float]]:
    """``a cat :1.2 AND a dog`` -> [("a cat", 1.2), (" a dog", 1.0)]: the text of each sub-prompt
    (trailing blanks dropped) and its weight (1 when none is written)."""
    parts = []
    for part in _AND.split(prompt):
        match = _TRAILING_WEIGHT.match(part)
        assert match is not None  # the pattern accepts any string
        parts.append((match.group(1), float(match.group(2)) if match.group(2) is not None else 1.0))
    return parts


# ----- prompt editing: a small recursive-descent parser -----
@dataclass(frozen=True)
class _Scheduled:
    before: tuple["_Node", ...]
    after: tuple["_Node", ...]
    when: str  # the number as written; its meaning depends on the steps


@dataclass(frozen=True)
class _Alternate:
    options: tuple[tuple["_Node", ...], ...]


@dataclass(frozen=True)
class _Group:  # emphasis brackets: kept as text, their content may hold schedules
    opening: str
    parts: tuple[tuple["_Node", ...], ...]  # one part, or two for "(text:weight)"
    closing: str


_Node = Union[str, _Scheduled, _Alternate, _Group]


class _NotAPrompt(ValueError):
    """The editing grammar does not accept the prompt; it is then used verbatim."""


class _Parser:
    """Grammar (as A1111 documents it): top level = prompt pieces or stray ``[]():`` runs;
    inside brackets a piece is plain text (``\\x`` escapes), ``(p)``, ``(p:p)``, ``[p]``,
    ``[p:p:N]``, ``[p:N]``, ``[p|p|...]``."""

    def __init__(self, text: str):
        self.text = text
        # Memo of construct results by position: the "|"-as-text retry would otherwise
        # re-parse nested brackets twice per level (exponential time on "[a|[a|[a|...").
        self.constructs: dict[int, tuple[_Node, int] | None] = {}

    def top_level(self) -> tuple[_Node, ...]:
        nodes: list[_Node] = []
        position = 0
        while position < len(self.text):
            piece, position_after = self.sequence(position, pipes=True)
            nodes.extend(piece)
            if position_after < len(self.text):
                char = self.text[position_after]
                if char not in "[]():":
                    raise _NotAPrompt(f"unexpected {char!r} at {position_after}")
                nodes.append(char)  # a bracket that opens no construct is ordinary text here
                position_after += 1
            position = position_after
        return tuple(nodes)

    def sequence(self, position: int, pipes: bool = False) -> tuple[list[_Node], int]:
        """Pieces from ``position`` up to a character that ends a prompt (``]):``, and ``|``
        unless ``pipes`` makes it text) or an opening bracket that starts no construct."""
        nodes: list[_Node] = []
        ends = "]):" if pipes else "])|:"
        while position < len(self.text):
            char = self.text[position]
            if char in ends:
                break
            if char in "[(":
                construct = self.construct(position)
                if construct is None:
                    break
                node, position = construct
                nodes.append(node)
                continue
            position = self.plain(position, nodes, "[]():" if pipes else "[]():|")
        return nodes, position

    def plain(self, position: int, nodes: list[_Node], ends: str) -> int:
        start = position
        while position < len(self.text) and self.text[position] not in ends:
            if self.text[position] == "\\":
                if position + 1 >= len(self.text) or self.text[position + 1] == "\n":
                    raise _NotAPrompt("a backslash escapes nothing")
                position += 1
            position += 1
        nodes.append(self.text[start:position])
        return position

    def construct(self, position: int) -> tuple[_Node, int] | None:
        if position not in self.constructs:
            parse = self.square if self.text[position] == "[" else self.round
            self.constructs[position] = parse(position)
        return self.constructs[position]

    def round(self, position: int) -> tuple[_Node, int] | None:
        first, position = self.sequence(position + 1)
        if self._at(position, ")"):
            return _Group("(", (tuple(first),), ")"), position + 1
        if not self._at(position, ":"):
            return None
        second, position = self.sequence(position + 1)
        if self._at(position, ")"):
            return _Group("(", (tuple(first), tuple(second)), ")"), position + 1
        return None

    def square(self, position: int) -> tuple[_Node, int] | None:
        first, after = self.sequence(position + 1)
        if self._at(after, "]"):
            return _Group("[", (tuple(first),), "]"), after + 1
        if self._at(after, "|"):
            alternate = self.alternate(first, after)
            if alternate is not None:
                return alternate
            # Not an alternation: "|" is then ordinary text, e.g. "[{b|d{:.5]" adds "{b|d{".
            first, after = self.sequence(position + 1, pipes=True)
        if self._at(after, ":"):
            return self.scheduled(first, after)
        return None

    def alternate(self, first: list[_Node], position: int) -> tuple[_Node, int] | None:
        options = [tuple(first)]
        while self._at(position, "|"):
            option, position = self.sequence(position + 1)
            options.append(tuple(option))
        if not self._at(position, "]"):
            return None
        return _Alternate(tuple(options)), position + 1

    def scheduled(self, first: list[_Node], position: int) -> tuple[_Node, int] | None:
        """After ``[first:``: either ``N]`` (add ``first`` after N) or ``second:N]``."""
        number = self._number_then_close(position + 1)
        if number is not None:
            return _Scheduled((), tuple(first), number[0]), number[1]
        second, position = self.sequence(position + 1)
        if not self._at(position, ":"):
            return None
        number = self._number_then_close(position + 1)
        if number is None:
            return None
        return _Scheduled(tuple(first), tuple(second), number[0]), number[1]

    def _number_then_close(self, position: int) -> tuple[str, int] | None:
        match = _NUMBER.match(self.text, position)
        if match is None or not self._at(match.end(), "]"):
            return None
        return match.group(1), match.end() + 1

    def _at(self, position: int, char: str) -> bool:
        return position < len(self.text) and self.text[position] == char


def _parse_editing(prompt: str) -> tuple[_Node, ...] | None:
    try:
        return _Parser(prompt).top_level()
    except _NotAPrompt:
        return None
    except RecursionError:  # absurdly deep nesting: treat as plain text rather than fail
        return None


def _resolve_when(when: str, steps: int, base_steps: int, hires: bool) -> int:
    """A1111's rule: a number with a dot is a fraction of the steps, else a step count; on the
    hires pass the first pass is subtracted (1.x fractions, counts above the first pass)."""
    value = float(when)
    if "." in when:
        value = (value - (1.0 if hires else 0.0)) * steps
    else:
        value = value - (base_steps if hires else 0)
    if value != value or value == float("inf"):  # 1e309 reads as infinity; NaN names no step: never
        return steps
    if value == float("-inf"):
        return -1  # before the first step: the edit applies from the start
    return min(steps, int(value))


def _walk(nodes: tuple[_Node, ...]):
    for node in nodes:
        yield node
        if isinstance(node, _Scheduled):
            yield from _walk(node.before)
            yield from _walk(node.after)
        elif isinstance(node, _Alternate):
            for option in node.options:
                yield from _walk(option)
        elif isinstance(node, _Group):
            for part in node.parts:
                yield from _walk(part)


def _text_at(nodes: tuple[_Node, ...], step: int, ends: dict[int, int]) -> str:
    out = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Scheduled):
            out.append(_text_at(node.before if step <= ends[id(node)] else node.after, step, ends))
        elif isinstance(node, _Alternate):
            out.append(_text_at(node.options[(step - 1) % len(node.options)], step, ends))
        else:
            inner = ":".join(_text_at(part, step, ends) for part in node.parts)
            out.append(node.opening + inner + node.closing)
    return "".join(out)


def prompt_schedule(prompt: str, steps: int, hires_steps: int | None = None) -> list[tuple[int, str]]:
    """``[(end_step, text), ...]`` for one (sub-)prompt: ``text`` is used while the sampler's
    step is at most ``end_step``. ``hires_steps`` set = the schedule of the hires pass, where
    ``steps`` is the first pass's step count.

    >>> prompt_schedule("a [b:3]", 10)
    [(3, 'a '), (10, 'a b')]
    """
    hires = hires_steps is not None
    total = hires_steps if hires else steps
    tree = _parse_editing(prompt)
    if tree is None:
        return [(total, prompt)]
    ends: dict[int, int] = {}
    boundaries = {total}
    for node in _walk(tree):
        if isinstance(node, _Scheduled):
            ends[id(node)] = _resolve_when(node.when, total, steps, hires)
            if ends[id(node)] >= 1:
                boundaries.add(ends[id(node)])
        elif isinstance(node, _Alternate):
            boundaries.update(range(1, total + 1))
    return [(step, _text_at(tree, step, ends)) for step in sorted(boundaries)]


def text_at_step(schedule: list[tuple[int, str]], step: int) -> str:
    """The text a 0-based sampler step uses (A1111: the first entry with ``step <= end``)."""
    for end, text in schedule:
        if step <= end:
            return text
    return schedule[-1][1]


# ----- emphasis -----
def parse_emphasis(text: str, mode: Emphasis | str = Emphasis.ORIGINAL) -> list[tuple[str, float]]:
    """(text, weight) runs; ``BREAK_RUN`` marks a BREAK. ``(x)`` x1.1, ``[x]`` /1.1, ``(x:w)`` xw,
    nested weights multiply; unclosed brackets close at the end; ``\\(`` etc. are literals.

    >>> parse_emphasis("an (important) word")
    [('an ', 1.0), ('important', 1.1), (' word', 1.0)]
    """
    if Emphasis(mode) is Emphasis.NONE:
        runs = _with_breaks(text, 1.0, [])
        return _merged(runs) or [("", 1.0)]
    runs: list[list] = []  # [text, weight] pairs, mutable while brackets close
    round_open: list[int] = []
    square_open: list[int] = []
    for match in _EMPHASIS_TOKEN.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            runs.append([token[1:], 1.0])
        elif token == "(":
            round_open.append(len(runs))
        elif token == "[":
            square_open.append(len(runs))
        elif weight is not None and round_open and _is_float(weight):
            _scale(runs, round_open.pop(), float(weight))
        elif token == ")" and round_open:
            _scale(runs, round_open.pop(), ROUND_FACTOR)
        elif token == "]" and square_open:
            _scale(runs, square_open.pop(), SQUARE_FACTOR)
        else:
            runs.extend([list(run) for run in _with_breaks(token, 1.0, [])])
    for start in round_open:
        _scale(runs, start, ROUND_FACTOR)
    for start in square_open:
        _scale(runs, start, SQUARE_FACTOR)
    return _merged([(t, w) for t, w in runs]) or [("", 1.0)]


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False  # "1.2.3": A1111 would crash; here the ":1.2.3)" stays text
    return True


def _scale(runs: list[list], start: int, factor: float) -> None:
    for run in runs[start:]:
        if (run[0], run[1]) != BREAK_RUN:  # BREAK is a marker, never a weighted word
            run[1] *= factor


def _with_breaks(text: str, weight: float, out: list) -> list:
    for index, part in enumerate(_BREAK.split(text)):
        if index:
            out.append(BREAK_RUN)
        out.append((part, weight))
    return out


def _merged(runs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Adjacent runs of equal weight joined (BREAK markers stay apart from text)."""
    merged: list[tuple[str, float]] = []
    for text, weight in runs:
        if merged and merged[-1][1] == weight and BREAK_RUN not in (merged[-1], (text, weight)):
            merged[-1] = (merged[-1][0] + text, weight)
        else:
            merged.append((text, weight))
    return merged


def has_brackets(text: str) -> bool:
    """Whether A1111 would note the emphasis mode in the infotext for this text."""
    return "(" in text or "[" in text
