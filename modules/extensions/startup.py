"""Extensions at server start, in A1111's order: install.py, preload.py (flags added to the real
parser, so extension flags parse and land in ``shared.cmd_opts``), then scripts/*.py.

Nothing here runs at import; ``prepare`` is called by ``launch.py`` before the flags are parsed
and ``load`` once the Runtime exists. A failing extension is reported on the console, recorded on
its ``Extension`` (the Extensions tab shows it) and never stops the server.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from modules.extensions import loader

PROGRAM_ROOT = Path(__file__).resolve().parents[2]
SETTINGS_FILE = "extension-settings.json"  # extensions' own settings (shared.opts), beside config.json
BUILTIN_FOLDER = "extensions-builtin"  # shipped with the program; --disable-extra-extensions keeps these


@dataclass
class ExtensionSet:
    """Every extension found at start, in load order, with what happened to each."""
    extensions: list[loader.Extension] = field(default_factory=list)
    builtin: frozenset[str] = frozenset()
    loaded: bool = False
    # file -> the extension holding it: asked for each script at every hook of every job, and the
    # list does not change after start, so each file's folders are resolved once
    _holders: dict[str, loader.Extension | None] = field(default_factory=dict, repr=False, compare=False)

    def state_of(self, extension: loader.Extension) -> str:
        if extension.errors and not extension.enabled:
            return "failed"
        if not extension.enabled:
            return "disabled"
        return "loaded" if self.loaded else "not loaded"

    def enabled(self) -> list[loader.Extension]:
        return [e for e in self.extensions if e.enabled]

    def holding(self, path: Path | str) -> loader.Extension | None:
        """The extension whose folder holds ``path`` (a script or callback's file), if any."""
        key = str(path)
        if key not in self._holders:
            resolved = Path(path).resolve()
            self._holders[key] = next((e for e in self.extensions if resolved.is_relative_to(e.path.resolve())), None)
        return self._holders[key]

    def disable_after_error(self, path: Path | str, message: str) -> loader.Extension | None:
        """Disables, until the next start, the extension holding ``path``, with ``message`` as its
        error (the Extensions tab shows it failed and why); its scripts and callbacks stop running."""
        extension = self.holding(path)
        if extension is not None:
            extension.errors.append(message)
            extension.enabled = False
        return extension


def program_scripts(root: Path = PROGRAM_ROOT) -> loader.Extension:
    """The program's own ``scripts/`` folder (X/Y/Z plot and the other built-in scripts) as the
    first extension: A1111 keeps its built-in scripts there and loads them before any extension,
    by the same code. It is not listed in the Extensions tab and no flag disables it."""
    return loader.Extension("builtin-scripts", root)


def persisted_disabled(options_file: Path) -> tuple[str, ...]:
    """The ``disabled_extensions`` setting, read before the Runtime exists (flags are not parsed yet)."""
    try:
        data = json.loads(options_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    value = data.get("disabled_extensions", ()) if isinstance(data, dict) else ()
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


def discover_all(root: Path, data_dir: Path, disabled: tuple[str, ...], *, disable_all: bool,
                 disable_extra: bool) -> ExtensionSet:
    """Built-in extensions (program folder) then the user's (``<data-dir>/extensions``), ordered together."""
    builtin = loader.discover(root / BUILTIN_FOLDER, disabled, disable_all=disable_all)
    extra = loader.discover(data_dir / "extensions", disabled, disable_all=disable_all or disable_extra)
    found = loader.load_order(builtin + extra)
    loader.check_requirements(found)
    return ExtensionSet(found, frozenset(e.name for e in builtin))


def prepare(argv: list[str], root: Path, parser: argparse.ArgumentParser,
            report: Callable[[str], None] = print) -> tuple[argparse.Namespace, ExtensionSet]:
    """Runs install.py and preload.py of the enabled extensions, then parses ``argv`` with the
    flags they added; the parsed flags become ``shared.cmd_opts``."""
    early, _ = parser.parse_known_args(argv)  # where the data lives and which extensions are off
    data_dir = (early.data_dir or root).resolve()
    found = discover_all(root, data_dir, persisted_disabled(data_dir / "config.json"),
                         disable_all=early.disable_all_extensions, disable_extra=early.disable_extra_extensions)
    for extension in found.enabled():
        if not early.skip_install:
            loader.run_install(extension, report=report)
        loader.run_preload(extension, parser, report=report)
    args = parser.parse_args(argv)
    set_cmd_opts(args)
    return args, found


def set_cmd_opts(args: argparse.Namespace) -> None:
    """Fills the one ``shared.cmd_opts`` in place, so modules that already imported it see the flags."""
    from modules import shared

    shared.cmd_opts.__dict__.clear()
    shared.cmd_opts.__dict__.update(vars(args))


def disable_extension(runtime, path: str, message: str) -> None:
    """An extension's code raised: it is disabled until the next start, and every callback it
    registered is dropped, so it cannot fail again in this run (A1111 only reports)."""
    from modules import script_callbacks

    extension = runtime.extensions.disable_after_error(path, message)
    if extension is None:
        return
    for entries in script_callbacks.callback_map.values():
        entries[:] = [e for e in entries if runtime.extensions.holding(e.script) is not extension]


def bind_compat_surface(runtime) -> None:
    """The A1111 module globals extensions read (checkpoint list, upscalers, embeddings) answer from ``runtime``."""
    from modules import script_callbacks, sd_hijack, sd_models, shared
    from modules.extensions.a1111_bridge import upscalers_of

    shared.bind_runtime(runtime)
    script_callbacks.failure_listeners[:] = [lambda path, message: disable_extension(runtime, path, message)]
    shared.sd_upscalers[:] = upscalers_of(runtime)
    sd_models.list_models()
    sd_hijack.model_hijack.embedding_db.load_textual_inversion_embeddings()


def load(found: ExtensionSet, settings_file: Path | None = None) -> list:
    """Imports the program's scripts/*.py, then those of every enabled extension (one that fails
    is disabled and reported), lets them declare settings (``on_ui_settings``) and reads their saved
    values; answers the settings callbacks called, for ``declare_late_settings``."""
    from modules import script_callbacks, scripts, shared

    scripts.load_extension_scripts([program_scripts(), *found.extensions])
    found.loaded = True
    script_callbacks.ui_settings_callback()
    called = script_callbacks.ui_settings_callbacks_registered()
    if settings_file is not None:
        try:
            shared.opts.load(settings_file)
        except (OSError, ValueError) as error:
            print(f"Extension settings not read from {settings_file}: {error}")
    return called


def declare_late_settings(already_called: list) -> None:
    """Calls the ``on_ui_settings`` callbacks registered since ``load``: some extensions register them
    in their script's ``__init__``, which works in A1111 because it declares settings while building
    the Settings tab, after the txt2img and img2img script objects were made."""
    from modules import script_callbacks

    script_callbacks.ui_settings_callback_since(already_called)


def parse_config_with_extensions(argv: list[str], root: Path):
    """``parse_config`` with extensions' flags: (AppConfig, ExtensionSet); a bad flag exits as argparse does."""
    from modules.config import ConfigError, build_arg_parser, config_from_args

    parser = build_arg_parser()
    args, found = prepare(argv, root, parser)
    try:
        config = config_from_args(args, root)
    except ConfigError as error:
        parser.error(str(error))
    set_a1111_paths(config)
    return config, found


def set_a1111_paths(config) -> None:
    """A1111's folder flags hold one path each (``cmd_opts.embeddings_dir`` etc.; ours repeat and
    add to the defaults), and ``modules.paths`` names the data folders: both follow ``config``."""
    from modules import paths, shared

    single = {"ckpt_dir": config.ckpt_dirs[-1], "vae_dir": config.vae_dirs[-1], "lora_dir": config.lora_dirs[-1],
              "embeddings_dir": config.embeddings_dirs[-1], "data_dir": config.data_dir,
              "models_dir": config.models_dir, "hypernetwork_dir": config.models_dir / "hypernetworks"}
    shared.cmd_opts.__dict__.update({key: str(value) for key, value in single.items()})
    paths.data_path = str(config.data_dir)
    paths.models_path = str(config.models_dir)
    paths.extensions_dir = str(config.data_dir / "extensions")
