"""A1111 compatibility surface: ``modules.scripts`` as extensions import it.

``Script`` (with A1111's lifecycle method names), ``AlwaysVisible``, ``basedir()``,
``scripts_data``, ``PostprocessImageArgs``/``PostprocessBatchListArgs``, ``OnComponent``, and
``ScriptRunner`` with ``scripts_txt2img``/``scripts_img2img`` (each tab's scripts, read from the
Runtime's script registry). Loading goes through
``modules.extensions.loader``; this module only records which ``Script`` classes were found.
The engine's own scripts are ``modules.extensions.scripts``.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from modules.extensions import loader
from modules.extensions.scripts import ScriptArgsError  # noqa: F401 - ours: a bad script arg, answered 422

AlwaysVisible = object()


class PostprocessImageArgs:
    def __init__(self, image: Any):
        self.image = image


class PostprocessBatchListArgs:
    def __init__(self, images: list):
        self.images = images


class Script:
    """Base class of an extension's script. ``show`` returns False, True, or ``AlwaysVisible``;
    the other methods are called at A1111's points of the generation and do nothing by default."""

    name: str | None = None
    section: str | None = None
    filename: str | None = None
    args_from = 0
    args_to = 0
    alwayson = False
    is_txt2img = False
    is_img2img = False
    group = None
    create_group = True
    infotext_fields: list | None = None
    paste_field_names: list | None = None
    api_info = None
    on_before_component_elem_id: list | None = None
    on_after_component_elem_id: list | None = None
    setup_for_ui_only = False
    controls = None

    def title(self) -> str:
        raise NotImplementedError()

    def ui(self, is_img2img: bool) -> Any:
        pass

    def show(self, is_img2img: bool) -> Any:
        return True

    def run(self, p: Any, *args: Any) -> Any:
        pass

    def setup(self, p: Any, *args: Any) -> None: ...
    def before_process(self, p: Any, *args: Any) -> None: ...
    def process(self, p: Any, *args: Any) -> None: ...
    def before_process_batch(self, p: Any, *args: Any, **kwargs: Any) -> None: ...
    def after_extra_networks_activate(self, p: Any, *args: Any, **kwargs: Any) -> None: ...
    def process_before_every_sampling(self, p: Any, *args: Any, **kwargs: Any) -> None: ...
    def process_batch(self, p: Any, *args: Any, **kwargs: Any) -> None: ...
    def postprocess_batch(self, p: Any, *args: Any, **kwargs: Any) -> None: ...
    def postprocess_batch_list(self, p: Any, pp: PostprocessBatchListArgs, *args: Any, **kwargs: Any) -> None: ...
    def on_mask_blend(self, p: Any, mba: Any, *args: Any) -> None: ...
    def post_sample(self, p: Any, ps: Any, *args: Any) -> None: ...
    def postprocess_image(self, p: Any, pp: PostprocessImageArgs, *args: Any) -> None: ...
    def postprocess_maskoverlay(self, p: Any, ppmo: Any, *args: Any) -> None: ...
    def postprocess_image_after_composite(self, p: Any, pp: PostprocessImageArgs, *args: Any) -> None: ...
    def postprocess(self, p: Any, processed: Any, *args: Any) -> None: ...
    def before_component(self, component: Any, **kwargs: Any) -> None: ...
    def after_component(self, component: Any, **kwargs: Any) -> None: ...
    def before_hr(self, p: Any, *args: Any) -> None: ...

    def on_before_component(self, callback: Any, *, elem_id: str) -> None:
        self.on_before_component_elem_id = [*(self.on_before_component_elem_id or []), (elem_id, callback)]

    def on_after_component(self, callback: Any, *, elem_id: str) -> None:
        self.on_after_component_elem_id = [*(self.on_after_component_elem_id or []), (elem_id, callback)]

    def describe(self) -> str:
        return ""

    def elem_id(self, item_id: str) -> str:
        """An element id unique to this script and tab, built as A1111 builds it."""
        need_tabname = self.show(True) == self.show(False)
        tabkind = "img2img" if self.is_img2img else "txt2img"
        tabname = f"{tabkind}_" if need_tabname else ""
        title = "".join(c if c.isalnum() or c == "_" else "_" for c in self.title().lower().replace(" ", "_"))
        return f"script_{tabname}{title}_{item_id}"


@dataclass
class OnComponent:
    """What an ``on_before_component``/``on_after_component`` callback of a script receives."""

    component: Any


class ScriptRunner:
    """A1111's per-tab script runner, as extensions read it: ``scripts`` (selectable then always-on),
    ``selectable_scripts``, ``alwayson_scripts``, ``titles``, ``title_map`` and ``script(title)``.
    A view over the bound Runtime's script registry, so it always lists what is registered now:
    extensions' A1111 script objects for this tab, and the built-in scripts (X/Y/Z plot, ...)."""

    def __init__(self, is_img2img: bool = False):
        self.is_img2img = is_img2img

    def initialize_scripts(self, is_img2img: bool) -> None:
        self.is_img2img = is_img2img

    def _registered(self, alwayson: bool) -> list:
        from modules import shared

        runtime = shared.bound_runtime()
        if runtime is None:
            return []
        return [getattr(script, "instances", {}).get(self.is_img2img, script)
                for script in runtime.scripts.scripts(self.is_img2img)
                if script.is_alwayson(self.is_img2img) == alwayson]

    @property
    def selectable_scripts(self) -> list:
        return self._registered(alwayson=False)

    @property
    def alwayson_scripts(self) -> list:
        return self._registered(alwayson=True)

    @property
    def scripts(self) -> list:
        return self.selectable_scripts + self.alwayson_scripts

    @property
    def titles(self) -> list[str]:
        """The "Script" dropdown's entries (A1111's ``script_index`` counts from 1 into these)."""
        return [script.title() for script in self.selectable_scripts]

    @property
    def title_map(self) -> dict[str, Any]:
        return {script.title().lower(): script for script in self.scripts}

    def script(self, title: str) -> Any:
        return self.title_map.get(title.lower())


scripts_txt2img = ScriptRunner(is_img2img=False)
scripts_img2img = ScriptRunner(is_img2img=True)
scripts_current: ScriptRunner | None = None


@dataclass
class ScriptFile:
    basedir: str
    filename: str
    path: str


@dataclass
class ScriptClassData:
    script_class: type
    path: str
    basedir: str
    module: ModuleType


scripts_data: list[ScriptClassData] = []
postprocessing_scripts_data: list[ScriptClassData] = []
current_basedir = str(Path(__file__).resolve().parent.parent)
load_errors: list[str] = []


def basedir() -> str:
    """The folder of the extension whose scripts are loading (A1111 sets it per file)."""
    return current_basedir


def _collect(module: ModuleType, path: str, base: str) -> None:
    """Every script class in the file's namespace, defined there or imported: A1111 registers both, and
    extensions keep their code in a package and re-export its class from a one-line ``scripts/*.py``."""
    from modules.scripts_postprocessing import ScriptPostprocessing
    for value in vars(module).values():
        if not isinstance(value, type):
            continue
        if issubclass(value, Script) and value is not Script:
            scripts_data.append(ScriptClassData(value, path, base, module))
        elif issubclass(value, ScriptPostprocessing) and value is not ScriptPostprocessing:
            postprocessing_scripts_data.append(ScriptClassData(value, path, base, module))


def load_extension_scripts(extensions: list[loader.Extension]) -> list[ScriptClassData]:
    """Imports the scripts of every enabled extension, in load order, and records their classes."""
    global current_basedir
    scripts_data.clear()
    postprocessing_scripts_data.clear()
    for extension in extensions:
        if not extension.enabled:
            continue
        current_basedir = str(extension.path)
        try:
            for module in loader.load_scripts(extension):
                _collect(module, module.__file__ or "", str(extension.path))
        finally:
            current_basedir = str(Path(__file__).resolve().parent.parent)
    return scripts_data


# One instance per script class and tab, as A1111's ScriptRunner holds them: the object whose ui()
# built the tab's controls is the one its job hooks and component hooks are called on.
_instances: dict[tuple[type, bool], Script | None] = {}


def instantiate(data: ScriptClassData, is_img2img: bool) -> Script | None:
    """The script object for a tab (made once), or None when it hides itself there or its
    constructor fails."""
    key = (data.script_class, is_img2img)
    if key not in _instances:
        _instances[key] = _new_instance(data, is_img2img)
    return _instances[key]


def live_instances(is_img2img: bool) -> list[Script]:
    """The script objects made for a tab, in load order (A1111's ``scripts_txt2img.scripts``)."""
    return [s for (cls, img2img), s in _instances.items() if img2img == is_img2img and s is not None
            and any(d.script_class is cls for d in scripts_data)]


def _new_instance(data: ScriptClassData, is_img2img: bool) -> Script | None:
    try:
        script = data.script_class()
        script.filename = data.path
        script.is_txt2img, script.is_img2img = not is_img2img, is_img2img
        visibility = script.show(is_img2img)
    except Exception:  # isolates an extension
        load_errors.append(f"{data.path}: {traceback.format_exc(limit=-3)}")
        return None
    if visibility is AlwaysVisible:
        script.alwayson = True
    elif not visibility:
        return None
    script.name = script.title().lower()
    return script


def list_scripts(scriptdirname: str, extension: str, *, include_extensions: bool = True) -> list[ScriptFile]:
    folder = Path(current_basedir) / scriptdirname
    return [ScriptFile(current_basedir, p.name, str(p)) for p in sorted(folder.glob(f"*{extension}"))] if folder.is_dir() else []


def list_files_with_name(filename: str) -> list[str]:
    return [str(Path(current_basedir) / filename)] if os.path.isfile(os.path.join(current_basedir, filename)) else []
