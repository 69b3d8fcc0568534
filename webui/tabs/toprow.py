"""The row above each generation tab: prompts with token counters, styles, Generate/Interrupt/Skip, paste."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gradio as gr

from modules.pipeline.conditioning import PromptOptions, prompt_token_count
from modules.styles import Style, apply_styles, delete_style, read_styles, save_style
from webui.forms import Form

PLACEHOLDER = "(Press Ctrl+Enter to generate, Alt+Enter to skip, Esc to interrupt)"


@dataclass
class TopRow:
    generate: gr.Button
    interrupt: gr.Button
    skip: gr.Button
    paste: gr.Button
    styles: gr.Dropdown


def token_counter_text(tokenizer, text: str, options: PromptOptions = PromptOptions(), negative: bool = False) -> str:
    used, limit = prompt_token_count(tokenizer, text or "", options, negative=negative)
    return f"{used}/{limit}"


def style_names(styles_file: Path) -> list[str]:
    return list(read_styles(styles_file))


def _counter(tokenizer, prompt_options: Callable[[], PromptOptions], negative: bool) -> Callable[[str], str]:
    return lambda text: token_counter_text(tokenizer, text, prompt_options(), negative)


def build_top_row(form: Form, tokenizer, styles_file: Path,
                  prompt_options: Callable[[], PromptOptions] = PromptOptions) -> TopRow:
    """``prompt_options`` gives the current prompt settings and embeddings, so the counters
    count as the generation will (comments, emphasis, embedding vectors)."""
    tab = form.tab
    with gr.Row(elem_id=f"{tab}_toprow"):
        with gr.Column(scale=6):
            prompt = form.add("prompt", gr.Textbox(label="Prompt", lines=3, placeholder=PLACEHOLDER, elem_id=f"{tab}_prompt"))
            prompt_count = gr.Markdown("0/75", elem_id=f"{tab}_token_counter", elem_classes=["token-counter"])
            negative = form.add("negative_prompt", gr.Textbox(label="Negative prompt", lines=3, placeholder=PLACEHOLDER,
                                                              elem_id=f"{tab}_neg_prompt"))
            negative_count = gr.Markdown("0/75", elem_id=f"{tab}_negative_token_counter", elem_classes=["token-counter"])
        with gr.Column(scale=2, min_width=220):
            generate = gr.Button("Generate", variant="primary", elem_id=f"{tab}_generate")
            with gr.Row():
                interrupt = gr.Button("Interrupt", elem_id=f"{tab}_interrupt", min_width=60)
                skip = gr.Button("Skip", elem_id=f"{tab}_skip", min_width=60)
            with gr.Row():
                paste = gr.Button("↙️", elem_id="paste", min_width=40)
                clear = gr.Button("🗑️", elem_id=f"{tab}_clear_prompt", min_width=40)
                apply = gr.Button("📋", elem_id=f"{tab}_style_apply", min_width=40)
            styles = form.add("styles", gr.Dropdown(style_names(styles_file), value=[], multiselect=True, label="Styles",
                                                    elem_id=f"{tab}_styles"))
    for box, counter, is_negative in ((prompt, prompt_count, False), (negative, negative_count, True)):
        box.change(_counter(tokenizer, prompt_options, is_negative), inputs=box, outputs=counter, queue=False,
                   show_progress="hidden", trigger_mode="always_last")
    clear.click(lambda: ("", ""), outputs=[prompt, negative], queue=False, show_progress="hidden")
    apply.click(lambda values: _apply_styles(values, prompt, negative, styles, styles_file),
                inputs={prompt, negative, styles}, outputs=[prompt, negative, styles], show_progress="hidden")
    _build_style_editor(form, styles, styles_file)
    return TopRow(generate, interrupt, skip, paste, styles)


def _apply_styles(values: dict, prompt: gr.Textbox, negative: gr.Textbox, styles: gr.Dropdown, styles_file: Path):
    """📋: write the selected styles' text into the prompt boxes and clear the selection (A1111)."""
    try:
        text, negative_text = apply_styles(values[prompt], values[negative], values[styles] or [], read_styles(styles_file))
    except KeyError as error:
        raise gr.Error(f"Styles: {error.args[0]}") from error
    return text, negative_text, []


def _build_style_editor(form: Form, styles: gr.Dropdown, styles_file: Path) -> None:
    tab = form.tab
    with gr.Accordion("Edit styles", open=False, elem_id=f"{tab}_styles_editor"):
        name = gr.Dropdown(style_names(styles_file), value=None, allow_custom_value=True, label="Style",
                           elem_id=f"{tab}_styles_edit_select")
        style_prompt = gr.Textbox(label="Prompt", lines=2, elem_id=f"{tab}_edit_style_prompt")
        style_negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{tab}_edit_style_neg_prompt")
        with gr.Row():
            copy = gr.Button("Copy from main prompt", elem_id=f"{tab}_edit_style_copy")
            save = gr.Button("Save", variant="primary", elem_id=f"{tab}_edit_style_save")
            delete = gr.Button("Delete", variant="stop", elem_id=f"{tab}_edit_style_delete")
        message = gr.Markdown("", elem_id=f"{tab}_edit_style_message")

    def load(chosen: str | None):
        style = read_styles(styles_file).get(chosen or "")
        return (style.prompt, style.negative_prompt) if style else (gr.skip(), gr.skip())

    def save_clicked(values: dict):
        try:
            saved = save_style(styles_file, Style(values[name] or "", values[style_prompt], values[style_negative]))
        except ValueError as error:
            return gr.skip(), gr.skip(), f"Not saved: {error}"
        names = list(saved)
        return gr.update(choices=names), gr.update(choices=names), f"Saved style **{values[name].strip()}** to `{styles_file}`"

    def delete_clicked(chosen: str | None):
        try:
            remaining = list(delete_style(styles_file, chosen or ""))
        except KeyError as error:
            return gr.skip(), gr.skip(), f"Not deleted: {error.args[0]}"
        return gr.update(choices=remaining, value=None), gr.update(choices=remaining), f"Deleted style **{chosen}**"

    name.change(load, inputs=name, outputs=[style_prompt, style_negative], show_progress="hidden")
    copy.click(lambda p, n: (p, n), inputs=[form.components["prompt"], form.components["negative_prompt"]],
               outputs=[style_prompt, style_negative], queue=False, show_progress="hidden")
    save.click(save_clicked, inputs={name, style_prompt, style_negative}, outputs=[name, styles, message])
    delete.click(delete_clicked, inputs=name, outputs=[name, styles, message])
