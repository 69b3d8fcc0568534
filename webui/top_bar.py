"""The checkpoint picker above the tabs: list, refresh, switch (with a visible error)."""

from __future__ import annotations

import gradio as gr

from modules.models.safe_load import CheckpointError
from modules.models.families import UnknownModelLayoutError
from modules.runtime import NoCheckpointError, Runtime

# What a failed switch can raise; each has a message meant for the user.
SWITCH_ERRORS = (CheckpointError, UnknownModelLayoutError, NoCheckpointError, KeyError, ValueError, OSError)


def checkpoint_titles(runtime: Runtime, refresh: bool = False) -> list[str]:
    return [file.title for file in runtime.checkpoints(refresh=refresh)]


def current_title(runtime: Runtime) -> str | None:
    try:
        return runtime.resolve_checkpoint().title
    except NoCheckpointError:
        return None


def error_text(error: BaseException) -> str:
    # KeyError's str() wraps its message in quotes.
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return f"Checkpoint not changed: {message}"


def build_top_bar(runtime: Runtime) -> None:
    with gr.Row(elem_id="top-bar"):
        checkpoint = gr.Dropdown(
            choices=checkpoint_titles(runtime), value=current_title(runtime),
            label="Stable Diffusion checkpoint", elem_id="sd-checkpoint", interactive=True,
        )
        refresh = gr.Button("🔄", elem_id="refresh-checkpoints", scale=0, min_width=40)
    status = gr.Markdown(_status_text(runtime), elem_id="checkpoint-status")

    def switch(title: str, progress: gr.Progress = gr.Progress()) -> tuple[dict, str]:
        progress(0, desc=f"Loading {title}")
        try:
            model = runtime.set_default_checkpoint(title)
        except SWITCH_ERRORS as error:
            return gr.update(value=current_title(runtime)), error_text(error)
        return gr.update(value=model.checkpoint.title), f"Loaded **{model.checkpoint.title}** ({model.detected.family.value})"

    def refresh_list() -> dict:
        return gr.update(choices=checkpoint_titles(runtime, refresh=True), value=current_title(runtime))

    checkpoint.input(switch, inputs=checkpoint, outputs=[checkpoint, status])
    refresh.click(refresh_list, outputs=checkpoint)


def _status_text(runtime: Runtime) -> str:
    title = current_title(runtime)
    if title is None:
        folders = ", ".join(str(d) for d in runtime.config.ckpt_dirs)
        return f"No checkpoint found. Put a `.safetensors` file in {folders} and press 🔄."
    return f"Default checkpoint: **{title}** · {runtime.device_policy.describe()}"
