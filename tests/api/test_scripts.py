"""The script registry and the Prompt matrix's combinations (pure, no server)."""

from __future__ import annotations

import pytest

from modules.pipeline.prompt_matrix import MatrixArgs, matrix_prompts, read_args
from modules.extensions.scripts import ALWAYS_VISIBLE, Script, ScriptArgsError, ScriptRegistry


class Named(Script):
    def __init__(self, title: str, shown=True):
        self._title, self._shown = title, shown

    def title(self) -> str:
        return self._title

    def show(self, is_img2img: bool):
        return self._shown(is_img2img) if callable(self._shown) else self._shown


def test_matrix_prompts_follow_a1111s_binary_order() -> None:
    assert matrix_prompts("a cat|red|hat") == ["a cat", "a cat, red", "a cat, hat", "a cat, red, hat"]
    assert matrix_prompts("a cat | red | hat", put_at_start=True, delimiter=" ") == [
        "a cat", "red a cat", "hat a cat", "red hat a cat"]
    assert matrix_prompts("no bars") == ["no bars"]
    assert len(matrix_prompts("x|1|2|3|4")) == 16


def test_matrix_args_defaults_and_errors() -> None:
    assert read_args([]) == MatrixArgs()
    assert read_args([True, True, "negative", "space", 10]) == MatrixArgs(True, True, "negative", "space", 10)
    for bad, word in (([1], "put_at_start"), ([False, False, "up"], "prompt_type"), ([False, False, "positive", "tab"],
                      "variations_delimiter"), ([False, False, "positive", "comma", 501], "margin_size"), ([False] * 6, "at most 5")):
        with pytest.raises(ScriptArgsError, match=word):
            read_args(bad)


def with_program_scripts(registry: ScriptRegistry) -> ScriptRegistry:
    """The registry with the program's scripts/ folder (the built-in scripts) loaded as
    ``Runtime.load_extensions`` adds them, in A1111's file order."""
    from modules import scripts
    from modules.extensions import startup
    from modules.extensions.a1111_bridge import A1111Script

    try:
        for data in scripts.load_extension_scripts([startup.program_scripts()]):
            instances = {tab: made for tab in (False, True) if (made := scripts.instantiate(data, tab)) is not None}
            registry.register(A1111Script(instances))
    finally:
        scripts.scripts_data.clear()
    return registry


def test_registry_finds_titles_ignoring_case_and_lists_by_tab() -> None:
    registry = with_program_scripts(ScriptRegistry())
    registry.register(Named("Only img2img", lambda is_img2img: is_img2img))
    registry.register(Named("Helper", ALWAYS_VISIBLE))
    txt2img = ["Prompt matrix", "Prompts from file or textbox", "X/Y/Z plot"]
    assert registry.titles(False) == txt2img
    assert registry.titles(True) == ["Loopback", "Outpainting mk2", "Poor man's outpainting", *txt2img[:2], "SD upscale",
                                     txt2img[2], "Only img2img"]
    assert [s.title() for s in registry.alwayson(False)] == ["Helper"]
    assert registry.find("PROMPT matrix").title() == "Prompt matrix"
    assert registry.find("helper", False, alwayson=True).title() == "Helper"
    with pytest.raises(KeyError, match="known: Prompt matrix, Prompts from file or textbox, X/Y/Z plot\"$"):
        registry.find("only img2img", False)
    with pytest.raises(KeyError, match="known: Helper"):
        registry.find("prompt matrix", True, alwayson=True)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Named("prompt matrix"))


def test_a_selectable_script_without_run_says_so() -> None:
    with pytest.raises(NotImplementedError, match="not a selectable script"):
        Named("Plain").run(None, None, [])


def test_matrix_parts_lose_surrounding_commas() -> None:
    assert matrix_prompts("a cat, | red, |, hat") == ["a cat,", "a cat,, red", "a cat,, hat", "a cat,, red, hat"]
