"""Runtime: the one object that owns the process's state.

It is built once from the AppConfig (``launch.py``, tests) and passed
explicitly to the UI, the API and the CLI; nothing else keeps state.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from modules.config import AppConfig
from modules.fileio import exclusive_lock, remove_stale_temporaries
from modules.jobs import Job, JobQueue
from modules.params import Img2ImgParams, ParamsError, Txt2ImgParams
from modules.styles import apply_styles, read_styles, set_aside_unreadable_styles
from modules.pipeline.generate import GeneratedImage, SaveOptions, generate_txt2img
from modules.pipeline.img2img import generate_img2img
from modules.device.policy import DevicePolicy, choose_device_policy, probe_cuda
from modules.device.runners import ModelRunners, Notices, build_runners, eager_reasons, resolve_backend, weights_id
from modules.models.vae_tiling import VAETiling
from modules.models.cache import ModelCache
from modules.models.files import VAE_SUFFIXES, CheckpointFile, find_checkpoint, scan_checkpoints, scan_vae_files
from modules.models.hashing import BackgroundHasher, HashCache
from modules.models.safe_load import CheckpointError, declared_resolution
from modules.models.load import LoadedModel, ModelKey, load_model
from modules.models.merge import MergeRequest, merge_checkpoints
from modules.networks.lora import LoraFile, LoraLibrary, loras_applied
from modules.networks.embeddings import EmbeddingLibrary, EmbeddingSet
from modules.models.detect import detect_checkpoint
from modules.pipeline.conditioning import PromptOptions
from modules.pipeline.prompt_syntax import strip_comments
from modules.options import PATH_OPTIONS, Options, OptionsError, OptionsStore
from modules.sampling.catalog import resolve_sampler
from modules.extensions.scripts import ScriptArgsError, ScriptRegistry
from modules.extensions.startup import SETTINGS_FILE as EXTENSION_SETTINGS_FILE, ExtensionSet, bind_compat_surface
from modules.extensions.startup import declare_late_settings, load as load_extension_scripts
from modules.pipeline.hooks import HookChain, JobHooks
from modules.upscalers.library import UpscalerLibrary, Upscaling, tile_settings
from modules.pipeline.postprocess import PostprocessRegistry

# Two SD1.5 models in fp32 take about 8 GiB; keep a second one only when that fits twice over.
_RAM_FOR_TWO_MODELS = 16 * 1024**3
VAE_AUTOMATIC = "Automatic"
VAE_NONE = "None"


@dataclass(frozen=True)
class PreparedJob:
    """A job checked by ``Runtime.prepare_job``: its final parameters and its scripts' hooks."""

    params: Txt2ImgParams
    hooks: JobHooks


class NoCheckpointError(LookupError):
    """No checkpoint file was found in any checkpoint folder."""


def available_ram_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def save_options_from(options: Options, data_dir: Path) -> SaveOptions:
    """The "Saving images/grids" and "Paths for saving" settings as the pipeline takes them.
    As in A1111, the general images/grids folder, when set, wins over the per-tab ones; a
    relative folder is under the data dir."""
    def folder(general: str, specific: str) -> Path | None:
        chosen = general or specific
        return data_dir / chosen if chosen else None

    folders = {
        "txt2img-images": folder(options.outdir_samples, options.outdir_txt2img_samples),
        "img2img-images": folder(options.outdir_samples, options.outdir_img2img_samples),
        "txt2img-grids": folder(options.outdir_grids, options.outdir_txt2img_grids),
        "img2img-grids": folder(options.outdir_grids, options.outdir_img2img_grids),
    }
    return SaveOptions(
        images=options.samples_save, grids=options.grid_save, fmt=options.samples_format.replace("jpeg", "jpg"),
        quality=options.jpeg_quality, pattern=options.samples_filename_pattern or "[seed]",
        folders=tuple((kind, path) for kind, path in folders.items() if path is not None),
    )


def automatic_cache_capacity(policy: DevicePolicy, ram_bytes: int | None) -> int:
    if policy.is_cuda:
        return 1
    return 2 if ram_bytes is not None and ram_bytes >= _RAM_FOR_TWO_MODELS else 1


class Runtime:
    def __init__(self, config: AppConfig, *, cuda_available: bool | None = None):
        self.config = config
        self.options = OptionsStore(config.options_file)  # an unreadable file is set aside, defaults used
        self.styles_set_aside = set_aside_unreadable_styles(config.styles_file)
        cuda = probe_cuda() if cuda_available is None else cuda_available
        self.device_policy = choose_device_policy(config.device, cuda)
        self.hashes = HashCache(config.hash_cache_file)
        self.hasher = BackgroundHasher(self.hashes, self._hashes_found)
        self.lora_library = LoraLibrary(config.lora_dirs)
        self.embedding_library = EmbeddingLibrary(config.embeddings_dirs)
        self.upscaler_library = UpscalerLibrary(config.upscaler_dirs)
        self.postprocessing = PostprocessRegistry.with_builtins()
        self._scan_lock = threading.Lock()
        self._checkpoints: list[CheckpointFile] | None = None
        self._vae_files: list[CheckpointFile] | None = None
        self._chosen_this_session: str | None = None
        self._detected: dict[tuple[str, int, int], str | None] = {}  # (path, size, mtime) -> why unusable
        self.jobs = JobQueue()
        self.scripts = ScriptRegistry()  # the built-in scripts (scripts/) join with the extensions: load_extensions
        self.models: ModelCache[ModelKey, LoadedModel] = ModelCache(self._load, self._cache_capacity(self.options.current))
        self.notices = Notices()
        self._runners: dict[tuple[ModelKey, str], ModelRunners] = {}
        self._runners_lock = threading.Lock()
        self.extensions = ExtensionSet()  # filled by load_extensions at server start
        self.job_hooks: list[JobHooks] = []  # run in every job after its scripts' (extensions add theirs)
        # "Apply and restart UI": the server that watches this (``webui.server.serve``) sets
        # ``can_restart`` and, once it is set, stops and starts the program again.
        self.restart_requested = threading.Event()
        self.can_restart = False
        # Told of each checkpoint loaded from disk (extensions' ``on_model_loaded``); ``last_model`` is
        # the model the latest job or switch acquired (A1111's ``shared.sd_model``).
        self.model_listeners: list[Callable[[LoadedModel], None]] = []
        self._last_model: Callable[[], LoadedModel | None] = lambda: None

    def load_extensions(self, found: ExtensionSet) -> None:
        """Imports the enabled extensions' scripts (their install.py and preload.py ran before the
        flags were parsed); the set, with each one's state and errors, is what the Extensions tab shows."""
        self.extensions = found
        bind_compat_surface(self)
        settings_called = load_extension_scripts(found, self.config.data_dir / EXTENSION_SETTINGS_FILE)
        from modules import scripts as a1111_scripts  # the compat surface, loaded only with extensions
        from modules.extensions.a1111_bridge import register_scripts
        from modules.extensions.a1111_job_callbacks import A1111JobCallbacks, model_loaded

        register_scripts(self, a1111_scripts.scripts_data)  # makes the script objects, as A1111's UI does
        declare_late_settings(settings_called)
        if not any(isinstance(hook, A1111JobCallbacks) for hook in self.job_hooks):
            self.job_hooks.append(A1111JobCallbacks())  # extensions' CFG and image-saved callbacks
            self.model_listeners.append(model_loaded)

    # ----- files -----
    def checkpoints(self, refresh: bool = False) -> list[CheckpointFile]:
        """The checkpoint files; a new file is listed at once and hashed in the background."""
        with self._scan_lock:
            if refresh or self._checkpoints is None:
                self._checkpoints = scan_checkpoints(self.config.ckpt_dirs, self.config.ckpt_files, self.hashes)
                self.hasher.request(f.path for f in self._checkpoints if f.sha256 is None)
            return list(self._checkpoints)

    def hashed(self, file: CheckpointFile) -> CheckpointFile:
        """``file`` with its SHA-256, computed now if the background hasher has not reached it yet
        (a job about to load the file needs its hash for the infotext; other jobs do not wait)."""
        if file.sha256 is not None:
            return file
        digest = self.hashes.sha256(file.path)
        self._hashes_found()
        return file.with_hash(digest)

    def _hashes_found(self) -> None:
        """Give the listed files the hashes computed since they were scanned."""
        def update(files: list[CheckpointFile] | None) -> list[CheckpointFile] | None:
            if files is None:
                return None
            return [f.with_hash(digest) if f.sha256 is None and (digest := self.hashes.cached(f.path)) else f
                    for f in files]
        with self._scan_lock:
            self._checkpoints = update(self._checkpoints)
            self._vae_files = update(self._vae_files)

    def loras(self, refresh: bool = False) -> list[LoraFile]:
        """The LoRA files under models/Lora and --lora-dir (recursive)."""
        return self.lora_library.files(refresh)

    def embeddings(self, refresh: bool = False) -> EmbeddingSet:
        """Textual inversion embeddings (re-read when the folders changed); "skipped" judged
        against the default checkpoint's text-encoder width (all loaded when there is none)."""
        found = self.embedding_library.current(refresh)
        width = self._default_text_width()
        return found if width is None else found.for_width(width)

    def _default_text_width(self) -> int | None:
        try:
            checkpoint = self.resolve_checkpoint()
        except (NoCheckpointError, KeyError):
            return None
        loaded = [key for key in self.models.loaded_keys() if key.checkpoint == checkpoint]
        if loaded:
            return self.models.acquire(loaded[-1]).text_encoder.config.hidden_size
        try:  # reads the header only
            return detect_checkpoint(checkpoint.path).text_encoder.hidden_size
        except (ValueError, OSError):
            return None

    def prompt_options(self) -> PromptOptions:
        """How prompts are read now: the settings and the embeddings on disk (for the pipeline
        and for ``conditioning.prompt_token_count``)."""
        options = self.options.current
        return PromptOptions(options.emphasis, options.comma_padding_backtrack, options.enable_prompt_comments,
                             self.embedding_library.current())

    def upscaling(self, should_stop=lambda: False) -> Upscaling:
        """The upscalers as they run now: the model files found, the tile settings, this device."""
        return Upscaling(self.upscaler_library, tile_settings(self.options.current), self.device_policy.device,
                         self.device_policy.unet_dtype, should_stop)

    def vae_files(self, refresh: bool = False) -> list[CheckpointFile]:
        with self._scan_lock:
            if refresh or self._vae_files is None:
                self._vae_files = scan_vae_files(self.config.vae_dirs, self.hashes)
                self.hasher.request(f.path for f in self._vae_files if f.sha256 is None)
            return list(self._vae_files)

    def resolve_checkpoint(self, query: str | None = None) -> CheckpointFile:
        """The checkpoint a request names; else the one chosen in this session, else ``--ckpt``,
        else the saved default, else the first one found."""
        files = self.checkpoints()
        if not files:
            folders = ", ".join(str(d) for d in self.config.ckpt_dirs)
            raise NoCheckpointError(f"no checkpoint found: put a .safetensors file in {folders}")
        if query:
            return find_checkpoint(files, query)
        explicit = [f for f in files if f.path in self.config.ckpt_files]
        if self._chosen_this_session is None and explicit:
            return explicit[0]
        default = self.options.current.sd_model_checkpoint
        if default:
            try:
                return find_checkpoint(files, default)
            except KeyError:
                pass  # the saved default was deleted or renamed: fall back to the first usable file
        return next((f for f in files if self.unusable_reason(f) is None), files[0])

    def unusable_reason(self, file: CheckpointFile) -> str | None:
        """Why ``file`` is not a checkpoint we can load (read from its header; remembered while
        the file is unchanged), or None when it is one."""
        try:
            stat = file.path.stat()
        except OSError as error:
            return f"cannot read {file.name}: {error.strerror}"
        identity = (str(file.path), stat.st_size, stat.st_mtime_ns)
        with self._scan_lock:
            if identity in self._detected:
                return self._detected[identity]
        try:
            detect_checkpoint(file.path)
            reason = None
        except (ValueError, OSError) as error:  # CheckpointError and layout errors are ValueErrors
            reason = f"cannot load the checkpoint {file.name}: {error}"
        with self._scan_lock:
            self._detected[identity] = reason
        return reason

    def resolve_vae(self, checkpoint: CheckpointFile, choice: str | None = None) -> CheckpointFile | None:
        """A VAE file to use instead of the checkpoint's own, or None to keep its own.

        "Automatic" picks a VAE file named like the checkpoint (``<stem>.vae.*``
        beside it or in the VAE folders, as A1111 does); "None" keeps the
        checkpoint's VAE; anything else must name a file in the VAE folders.
        """
        choice = choice or self.options.current.sd_vae
        if choice == VAE_NONE:
            return None
        if choice == VAE_AUTOMATIC:
            return self._automatic_vae(checkpoint)
        return find_checkpoint(self.vae_files(), choice)

    def _automatic_vae(self, checkpoint: CheckpointFile) -> CheckpointFile | None:
        """``<stem>.vae.<ext>`` beside the checkpoint, else a VAE-folder file with that name or ``<stem>.<ext>``."""
        stem = checkpoint.path.stem
        for suffix in VAE_SUFFIXES:
            beside = checkpoint.path.with_name(f"{stem}.vae{suffix}")
            if beside.is_file():
                return CheckpointFile.from_file(beside, beside.name, self.hashes.sha256(beside))
        wanted = {f"{stem}.vae{suffix}" for suffix in VAE_SUFFIXES} | {f"{stem}{suffix}" for suffix in VAE_SUFFIXES}
        return next((vae for vae in self.vae_files() if vae.path.name in wanted), None)

    # ----- models -----
    def acquire_model(self, checkpoint_query: str | None = None, vae_choice: str | None = None) -> LoadedModel:
        checkpoint = self.hashed(self.resolve_checkpoint(checkpoint_query))
        vae = self.resolve_vae(checkpoint, vae_choice)
        model = self.models.acquire(ModelKey(checkpoint, vae and self.hashed(vae)))
        self._last_model = weakref.ref(model)  # not a reference: an evicted model must be freed
        return model

    @property
    def last_model(self) -> LoadedModel | None:
        """The model the latest job or switch acquired, while it is still loaded."""
        return self._last_model()

    def default_size(self, checkpoint_query: str | None = None) -> tuple[int, int]:
        """(width, height) a form should start with for this checkpoint: the resolution its
        ModelSpec metadata declares (the bundled model's 64x64), else SD's 512x512."""
        try:
            return declared_resolution(self.resolve_checkpoint(checkpoint_query).path) or (512, 512)
        except (NoCheckpointError, KeyError, CheckpointError):
            return 512, 512

    def merge_checkpoints(self, request: MergeRequest) -> CheckpointFile:
        """Merge into the first checkpoint folder, forget any cached model of a file it replaced, and
        rescan, so the result is listed (and loadable) at once."""
        folder = self.config.ckpt_dirs[0]
        path = merge_checkpoints(request, folder)
        self.models.unload_where(lambda key: key.checkpoint.path == path)
        return find_checkpoint(self.checkpoints(refresh=True), str(path.relative_to(folder).as_posix()))

    def set_default_checkpoint(self, query: str) -> LoadedModel:
        """Load the named checkpoint, then make it the default (a failed load changes nothing)."""
        model = self.acquire_model(query)
        self.options.update({"sd_model_checkpoint": model.checkpoint.title})
        self._chosen_this_session = model.checkpoint.title
        return model

    def prepare_job(self, params: Txt2ImgParams | PreparedJob) -> PreparedJob:
        """The job as it will run, checked once: its always-on scripts (``script_hooks``) with their
        ``before_job`` applied; then validated, the chosen styles merged and prompt comments
        stripped. ParamsError (nothing queued) names every bad field, ``alwayson_scripts.<title>``
        for a script's."""
        if isinstance(params, PreparedJob):
            return params
        hooks, problems = self.script_hooks(params)
        for title, hook in hooks:
            try:
                params = hook.before_job(params)
            except ScriptArgsError as error:
                problems.append((f"alwayson_scripts.{title}", str(error)))
        if problems:
            raise ParamsError(problems)
        params = self.with_styles(params.validate(self.upscaler_library.model_names()))
        if self.options.current.enable_prompt_comments:  # A1111 strips them before anything, infotext included
            params = dataclasses.replace(params, prompt=strip_comments(params.prompt),
                                         negative_prompt=strip_comments(params.negative_prompt))
        return PreparedJob(params, HookChain([*(hook for _, hook in hooks), *self.job_hooks]))

    def script_hooks(self, params: Txt2ImgParams) -> tuple[list[tuple[str, JobHooks]], list[tuple[str, str]]]:
        """Every always-on script of the job's tab, in the registry's order (as A1111 runs them), with
        the args ``params.alwayson_scripts`` gives it (its defaults for the rest, as A1111's API
        fills them); and the problems: titles that name no always-on script of the tab."""
        is_img2img = isinstance(params, Img2ImgParams)
        given, problems = {}, []
        for title, args in params.alwayson_scripts:
            try:
                given[self.scripts.find(title, is_img2img, alwayson=True).title()] = list(args)
            except KeyError as error:
                problems.append((f"alwayson_scripts.{title}", str(error.args[0])))
        hooks: list[tuple[str, JobHooks]] = []
        for script in self.scripts.alwayson(is_img2img):
            hook = script.hooks(params, given.get(script.title(), []))
            if not (hooks and hooks[-1][1].absorb(hook)):  # A1111's scripts share one ``p`` per job
                hooks.append((script.title(), hook))
        return hooks, problems

    def preview_every(self) -> int:
        """Live previews every N steps per the "Live previews" settings (0 = none)."""
        options = self.options.current
        return max(options.show_progress_every_n_steps, 0) if options.live_previews_enable else 0

    def submit(self, job: Txt2ImgParams | PreparedJob, preview_every: int | None = None,
               save: SaveOptions | None = None) -> Job:
        """Queue one generation, checked once (``prepare_job``, unless already prepared: ParamsError
        at the edge, nothing queued); its always-on scripts run at their hook points inside the job.
        ``preview_every`` None = the live-preview settings; ``save`` None = the saving settings now."""
        prepared = self.prepare_job(job)
        params, hooks = prepared.params, prepared.hooks
        options = self.options.current
        save = save or save_options_from(options, self.config.data_dir)
        preview_every = self.preview_every() if preview_every is None else preview_every
        full_preview = options.show_progress_type == "Full"
        loras = self.lora_library.requests_for(
            {"prompt": params.prompt, "negative_prompt": params.negative_prompt},
            options.extra_networks_default_multiplier)

        def work(job: Job) -> list[GeneratedImage]:
            model = self.job_model(self.acquire_model(params.checkpoint, params.vae),
                                   eager_reasons(has_loras=bool(loras), seamless_tiling=params.tiling))
            # txt2img's hires pass may name an upscaler model; img2img has no hires pass
            hires_upscaling = {} if isinstance(params, Img2ImgParams) else {"upscaling": self.upscaling(lambda: job.interrupted)}
            prompt_options = self.prompt_options()  # embeddings as on disk when the job starts
            generate = generate_img2img if isinstance(params, Img2ImgParams) else generate_txt2img
            # The LoRAs change the cached model's weights in place for this job only (jobs run one
            # at a time on the worker) and are taken out again however the job ends. The data dir's
            # lock orders this job with those of another process on the same data dir (the CLI).
            with exclusive_lock(self.generation_lock_file), loras_applied(model, loras) as lora_fields:
                return generate(model, params, self.config.outputs_dir, job, preview_every=preview_every,
                                save=save, full_preview=full_preview, extra=lora_fields,
                                prompt_options=prompt_options, hooks=hooks, **hires_upscaling)

        return self.jobs.submit(work, max_waiting=options.queue_max_waiting, description=job_description(params))

    # ----- backends -----
    def backend_for(self, model: LoadedModel) -> str:
        """The backend ``model``'s jobs use: --backend, else the inference_backend setting; "auto"
        resolved by device and model size."""
        requested = self.config.device.backend or self.options.current.inference_backend
        return resolve_backend(requested, self.device_policy.is_cuda, sum(p.numel() for p in model.unet.parameters()))

    @property
    def generation_lock_file(self) -> Path:
        return self.config.hash_cache_file.parent / "generation.lock"

    @property
    def compiled_cache_dir(self) -> Path:
        return self.config.data_dir / "cache" / "openvino"

    def job_model(self, model: LoadedModel, eager_because: tuple[str, ...] = ()) -> LoadedModel:
        """``model`` as one job runs it: through the backend's runners unless the job changes what a
        compiled net computes (then eager, and the console says why), with the VAE tiling settings."""
        options = self.options.current
        tiling = VAETiling(mode=options.vae_tiling, min_pixels=options.vae_tiling_min_pixels)
        backend = self.backend_for(model)
        if backend == "torch":
            return dataclasses.replace(model, vae_tiling=tiling)
        if model.placement is not None:  # a compiled graph keeps its weights where it was compiled
            eager_because = (*eager_because, f"--{model.placement.mode.value} moves the weights between devices")
        if eager_because:
            self.notices.once(f"{backend}: this job runs eager PyTorch: {'; '.join(eager_because)}")
            return dataclasses.replace(model, vae_tiling=tiling)
        return dataclasses.replace(model, runners=self.runners_for(model, backend), vae_tiling=tiling)

    def runners_for(self, model: LoadedModel, backend: str) -> ModelRunners:
        key = (ModelKey(model.checkpoint, model.vae_file), backend)
        with self._runners_lock:
            loaded = set(self.models.loaded_keys())
            for stale in [k for k in self._runners if k[0] not in loaded]:
                del self._runners[stale]  # compiled nets of an evicted model go with it
            if key not in self._runners:
                weights = weights_id(model.checkpoint.sha256, model.vae_file and model.vae_file.sha256)
                self._runners[key] = build_runners(model.unet, model.vae, backend, weights,
                                                   self.compiled_cache_dir, self.notices,
                                                   text_encoder=model.text_encoder)
            return self._runners[key]

    def check_queue_room(self) -> None:
        """QueueFullError when the "queue_max_waiting" setting's number of jobs already wait."""
        self.jobs.check_room(self.options.current.queue_max_waiting)

    def with_styles(self, params: Txt2ImgParams) -> Txt2ImgParams:
        if not params.styles:
            return params
        try:
            prompt, negative = apply_styles(params.prompt, params.negative_prompt, params.styles,
                                            read_styles(self.config.styles_file))
        except KeyError as error:
            raise ParamsError([("styles", str(error.args[0]))]) from error
        return dataclasses.replace(params, prompt=prompt, negative_prompt=negative)

    def resolved_setting(self, key: str, value):
        """A setting's value in its canonical spelling; OptionsError when it names nothing that exists."""
        if value is None or not isinstance(value, str):
            return value  # types and ranges are checked by the options store
        if key == "sd_model_checkpoint":
            return self.usable_checkpoint_title(value)
        if key == "sd_vae" and value not in (VAE_AUTOMATIC, VAE_NONE):
            try:
                return find_checkpoint(self.vae_files(), value).name
            except KeyError as error:
                raise OptionsError(key, f"{error.args[0]}; or {VAE_AUTOMATIC} or {VAE_NONE}") from error
        if key == "txt2img_default_sampler":
            try:
                resolve_sampler(value)  # kept as written: "DPM++ 2M Karras" carries its schedule
            except ValueError as error:
                raise OptionsError(key, str(error)) from error
        return value

    def usable_checkpoint_title(self, query: str) -> str:
        """The title of the checkpoint ``query`` names, checked to be loadable (from its header);
        OptionsError naming ``sd_model_checkpoint`` otherwise, so a bad choice is refused before it
        is stored or queued and the previous default keeps serving."""
        try:
            chosen = find_checkpoint(self.checkpoints(), query)
        except KeyError as error:
            raise OptionsError("sd_model_checkpoint", str(error.args[0])) from error
        reason = self.unusable_reason(chosen)
        if reason is not None:
            raise OptionsError("sd_model_checkpoint", reason)
        return chosen.title

    def update_options(self, changes: dict) -> Options:
        """Validate, resolve and save settings; OptionsError (nothing saved) names the first bad one.
        A setting that names something (checkpoint, VAE, sampler) must name something that exists,
        so no stored value can make later requests fail."""
        current = self.options.current
        for key, value in changes.items():
            if key in PATH_OPTIONS and self.config.reachable_from_network and value != getattr(current, key, value):
                raise OptionsError(key, "output folders cannot be changed on a server reachable from the network; "
                                        "set them in config.json or from a page on this machine")
        changes = {key: self.resolved_setting(key, value) for key, value in changes.items()}
        if changes.get("sd_model_checkpoint") is not None:
            self._chosen_this_session = changes["sd_model_checkpoint"]
        options = self.options.update(changes)
        self.models.set_capacity(self._cache_capacity(options))
        return options

    def remove_stale_temporaries(self) -> list[Path]:
        """At start: the temporary files of saves that a killed process left behind (outputs,
        settings, caches, merged checkpoints), so they do not pile up."""
        save = save_options_from(self.options.current, self.config.data_dir)
        trees = [self.config.outputs_dir, *(folder for _, folder in save.folders)]
        folders = [self.config.data_dir, self.config.hash_cache_file.parent, self.config.ckpt_dirs[0]]
        return remove_stale_temporaries(trees, recursive=True) + remove_stale_temporaries(folders, recursive=False)

    def _cache_capacity(self, options: Options) -> int:
        if options.sd_checkpoints_limit is not None:
            return options.sd_checkpoints_limit
        return automatic_cache_capacity(self.device_policy, available_ram_bytes())

    def _load(self, key: ModelKey) -> LoadedModel:
        model = load_model(key.checkpoint, key.vae, self.device_policy)
        for listener in self.model_listeners:
            listener(model)
        return model


def job_description(params: Txt2ImgParams) -> str:
    """The job's console description: kind, size, batch and steps (what makes it long or short)."""
    kind = "img2img" if isinstance(params, Img2ImgParams) else "txt2img"
    return (f"{kind} {params.width}x{params.height} batch {params.batch_size}x{params.n_iter} "
            f"steps {params.steps} {params.sampler_name}")
