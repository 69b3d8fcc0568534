"""What the generation tabs share: Generate (submit, then wait for the jobs while the page polls
progress), Interrupt, Skip, reattaching after a reload, and ↙️ paste of an infotext."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from modules.extensions.scripts import ScriptArgsError
from modules.jobs import QueueFullError
from modules.params import ParamsError, Txt2ImgParams
from modules.pipeline.generate import GeneratedImage, SaveOptions
from modules.runtime import Runtime
from webui.forms import SCRIPT_NONE, Form, paste_updates, script_arg_values
from webui.progress import CURRENT_JOB, find_jobs, split_ids, wait_for_results
from webui.tabs.output_panel import OutputPanel, result_record
from webui.tabs.toprow import TopRow



@dataclass(frozen=True)
class Submission:
    """One job to queue: its parameters and, when not the settings' own, where it saves."""

    params: Txt2ImgParams
    save: SaveOptions | None = None


# Builds the jobs of one Generate click from the form's values by field name
# (several for img2img's batch mode, one job each).
ParamsBuilder = Callable[[dict[str, Any]], list[Submission]]


@dataclass
class GenerationTab:
    form: Form
    top: TopRow
    panel: OutputPanel
    job_ids: gr.Textbox


def problems_text(error: ParamsError) -> str:
    return "**Not generated.** " + "; ".join(f"`{name}`: {reason}" for name, reason in error.problems)


def submit_jobs(runtime: Runtime, submissions: list[Submission]) -> list[str]:
    """Queue the generations; the job ids, in order. Every job is checked before any is queued."""
    prepared = [runtime.prepare_job(s.params) for s in submissions]
    return [runtime.submit(job, save=s.save).id for job, s in zip(prepared, submissions)]


@dataclass(frozen=True)
class ScriptCall:
    """A selected script and what it runs on; it runs while the page waits (it queues its own jobs)."""

    script: Any
    submissions: tuple[Submission, ...]
    args: tuple


def run_script(runtime: Runtime, call: ScriptCall) -> tuple[list[GeneratedImage], list[str]]:
    """The script's images, or the reason it could not run."""
    images: list[GeneratedImage] = []
    try:
        for submission in call.submissions:
            images += call.script.run(runtime, submission.params, list(call.args), save=submission.save)
    except (ScriptArgsError, ParamsError) as error:
        return images, [f"{call.script.title()}: {error}"]
    except Exception as error:  # a script is extension code: its failure is shown, the app goes on
        return images, [f"{call.script.title()} failed: {type(error).__name__}: {error}"]
    return images, []


def results_message(runtime: Runtime, ids: list[str], count: int, errors: list[str]) -> str:
    parts = [f"**Error:** {error}" for error in errors]
    if any(job.interrupted for job in find_jobs(runtime, ids)):
        parts.append(f"Interrupted: {count} image(s) finished.")
    elif not errors:
        parts.append(f"{count} image(s).")
    return " ".join(parts)


def results_waiter(runtime: Runtime):
    """The handler that waits for a tab's jobs (or runs its script):
    (gallery, infotext, results, selected, status, pending script call)."""
    def wait(ids_text: str, call: ScriptCall | None):
        ids = split_ids(ids_text)
        if call is not None:
            generated, errors = run_script(runtime, call)
        elif find_jobs(runtime, ids):
            generated, errors = wait_for_results(runtime, ids)
        else:
            return (gr.skip(),) * 6
        records = [result_record(g) for g in generated]
        message = results_message(runtime, ids, len(records), errors)
        return [r["image"] for r in records], (records[0]["infotext"] if records else ""), records, 0, message, None
    return wait


def wire_generation(blocks: gr.Blocks, runtime: Runtime, tab: GenerationTab, build_params: ParamsBuilder,
                    script_controls: dict[str, list], extra_inputs: set) -> None:
    form, panel, top, job_ids = tab.form, tab.panel, tab.top, tab.job_ids
    pending = gr.State(None)  # a script call waiting to run
    submit = submitter(runtime, tab, build_params, script_controls)
    wait = results_waiter(runtime)
    outputs = [panel.gallery, panel.infotext, panel.results, panel.selected, panel.status, pending]
    inputs = form.inputs | extra_inputs | {c for controls in script_controls.values() for _, c in controls}
    top.generate.click(submit, inputs=inputs, outputs=[job_ids, panel.status, pending], show_progress="hidden").then(
        None, inputs=[job_ids], js=f"(ids) => {{ sdTrackJobs('{form.tab}', ids); }}",
    ).then(
        wait, inputs=[job_ids, pending], outputs=outputs, show_progress="hidden", concurrency_limit=None,
    ).then(None, js=f"() => sdJobsDone('{form.tab}')")
    # After a reload: the ids kept in the browser come back into the page, then the results when done.
    blocks.load(lambda ids: ids, inputs=[job_ids], outputs=[job_ids], js=f"(ids) => sdRestoreJobs('{form.tab}')",
                show_progress="hidden", queue=False).then(
        wait, inputs=[job_ids, pending], outputs=outputs, show_progress="hidden", concurrency_limit=None,
    ).then(None, js=f"() => sdJobsDone('{form.tab}')")
    # The ids kept in the browser too: a reloaded page may not have them back in job_ids yet.
    stored_ids = f"(ids) => ids || localStorage.getItem('sd-jobs-{form.tab}') || ''"
    top.interrupt.click(lambda ids: _interrupt(runtime, ids), inputs=[job_ids], js=stored_ids, show_progress="hidden",
                        concurrency_limit=None)
    top.skip.click(lambda ids: _skip_current(runtime, ids), inputs=[job_ids], js=stored_ids, show_progress="hidden",
                   concurrency_limit=None)


def submitter(runtime: Runtime, tab: GenerationTab, build_params: ParamsBuilder, script_controls: dict[str, list]):
    """Generate's first step: queue the jobs, or prepare the selected script's call (it runs while
    the page waits, queueing its own jobs; the page then follows the current job)."""
    form = tab.form

    def submit(values: dict) -> tuple[str, str, ScriptCall | None]:
        named = {**form.named(values), "_raw": values}
        title = named.get("script") or SCRIPT_NONE
        try:
            submissions = build_params(named)
            if title == SCRIPT_NONE:
                return ",".join(submit_jobs(runtime, submissions)), "", None
            script = runtime.scripts.find(title, form.tab == "img2img")
            for submission in submissions:
                runtime.prepare_job(submission.params)
            args = script_arg_values(values, script_controls.get(title, []))
            runtime.check_queue_room()
        except ParamsError as error:
            return "", problems_text(error), None
        except QueueFullError as error:
            return "", f"**Not generated:** {error}.", None
        except KeyError as error:
            return "", f"**Not generated.** {error.args[0]}", None
        return CURRENT_JOB, "", ScriptCall(script, tuple(submissions), tuple(args))
    return submit


def _interrupt(runtime: Runtime, ids: str) -> None:
    for job in find_jobs(runtime, split_ids(ids)):
        job.interrupt()


def _skip_current(runtime: Runtime, ids: str) -> None:
    unfinished = [job for job in find_jobs(runtime, split_ids(ids)) if not job.future.done()]
    if unfinished:
        unfinished[0].skip()


def wire_paste(tab: GenerationTab, base_params: Callable[[dict[str, Any]], Txt2ImgParams]) -> None:
    """↙️: the infotext in the prompt box spread over every field it states."""
    form, status = tab.form, tab.panel.status

    def paste(values: dict) -> dict:
        named = form.named(values)
        text = named.get("prompt") or ""
        try:
            base = base_params(named)
        except ParamsError:
            base = Txt2ImgParams()
        try:
            pasted = paste_updates(form, text, base)
        except ValueError as error:
            return {status: f"**Not pasted:** {error}"}
        return {**pasted, status: "Pasted the generation parameters."}

    outputs = [*form.components.values(), *(component for component, _ in form.paste_fields), status]
    tab.top.paste.click(paste, inputs=form.inputs, outputs=outputs, show_progress="hidden")
