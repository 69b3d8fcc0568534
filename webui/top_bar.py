"""The checkpoint picker above the tabs: list, refresh, switch (with a visible error)."""

from __future__ import annotations

import gradio as gr

from modules.models.safe_load import CheckpointError
from modules.models.families import UnknownModelLayoutError
from webui.tabs.page_load import PageLoad
from modules.runtime import VAE_AUTOMATIC, VAE_NONE, NoCheckpointError, Runtime

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


def build_top_bar(runtime: Runtime, page_load: PageLoad | None = None) -> gr.Dropdown:
    """The picker row; returns the checkpoint dropdown so the tabs can follow a switch."""
    with gr.Row(elem_id="quicksettings"):
        checkpoint = gr.Dropdown(
            choices=checkpoint_titles(runtime), value=current_title(runtime),
            label="Stable Diffusion checkpoint", elem_id="setting_sd_model_checkpoint", interactive=True,
        )
        refresh = gr.Button("🔄", elem_id="refresh_sd_model_checkpoint", scale=0, min_width=40)
        vae = gr.Dropdown(choices=vae_choices(runtime), value=runtime.options.current.sd_vae, label="SD VAE",
                          elem_id="setting_sd_vae", interactive=True)
    status = gr.Markdown(_status_text(runtime), elem_id="checkpoint_status")

    def switch(title: str, progress: gr.Progress = gr.Progress()) -> tuple[dict, str]:
        progress(0, desc=f"Loading {title}")
        try:
            model = runtime.set_default_checkpoint(title)
        except SWITCH_ERRORS as error:
            return gr.update(value=current_title(runtime)), error_text(error)
        return gr.update(value=model.checkpoint.title), f"Loaded **{model.checkpoint.title}** ({model.detected.family.value})"

    def switch_vae_clicked(choice: str, progress: gr.Progress = gr.Progress()) -> tuple[dict, str]:
        progress(0, desc=f"Loading VAE {choice}")
        value, message = switch_vae(runtime, choice)
        return gr.update(value=value), message

    def refresh_list() -> tuple[dict, dict]:
        runtime.vae_files(refresh=True)
        return (gr.update(choices=checkpoint_titles(runtime, refresh=True), value=current_title(runtime)),
                gr.update(choices=vae_choices(runtime), value=runtime.options.current.sd_vae))

    checkpoint.input(switch, inputs=checkpoint, outputs=[checkpoint, status])
    vae.input(switch_vae_clicked, inputs=vae, outputs=[vae, status])
    refresh.click(refresh_list, outputs=[checkpoint, vae])
    if page_load is not None:  # another page may have switched since this one was built
        page_load.add([checkpoint, vae], lambda: {checkpoint: current_title(runtime), vae: runtime.options.current.sd_vae})
    return checkpoint


def switch_vae(runtime: Runtime, choice: str) -> tuple[str, str]:
    """Make ``choice`` the "SD VAE" setting and load it with the current checkpoint; on failure the
    previous choice stays. (the value the dropdown shows, the message)."""
    previous = runtime.options.current.sd_vae
    try:
        runtime.update_options({"sd_vae": choice})
        model = runtime.acquire_model()
    except SWITCH_ERRORS as error:
        runtime.update_options({"sd_vae": previous})
        return previous, f"VAE not changed: {error_text(error).removeprefix('Checkpoint not changed: ')}"
    vae_name = model.vae_file.title if model.vae_file else "the checkpoint's own VAE"
    return choice, f"VAE: **{vae_name}** with **{model.checkpoint.title}**"


def vae_choices(runtime: Runtime) -> list[str]:
    return [VAE_AUTOMATIC, VAE_NONE, *(file.title for file in runtime.vae_files())]


def _status_text(runtime: Runtime) -> str:
    title = current_title(runtime)
    if title is None:
        folders = ", ".join(str(d) for d in runtime.config.ckpt_dirs)
        return f"No checkpoint found. Put a `.safetensors` file in {folders} and press 🔄."
    return f"Default checkpoint: **{title}** · {runtime.device_policy.describe()}"
