"""A1111 compatibility surface: the settings model extensions write against (A1111's
``modules.options``: ``OptionInfo``, ``OptionHTML``, ``options_section``, ``Options``).

Our own settings live in ``modules/options.py``; this holds what extensions add with
``shared.opts.add_option`` and the values of every setting as a plain dict (``opts.data``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable


class OptionInfo:
    def __init__(self, default: Any = None, label: str = "", component: Any = None, component_args: Any = None,
                 onchange: Callable | None = None, section: tuple | None = None, refresh: Callable | None = None,
                 comment_before: str = "", comment_after: str = "", infotext: str | None = None,
                 restrict_api: bool = False, category_id: str | None = None):
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id
        self.refresh = refresh
        self.do_not_save = False
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api
        self.reload_required = False

    def link(self, label: str, url: str) -> "OptionInfo":
        self.comment_before += f"[<a href='{url}' target='_blank'>{label}</a>]"
        return self

    def js(self, label: str, js_func: str) -> "OptionInfo":
        self.comment_before += f"[<a onclick='{js_func}(); return false'>{label}</a>]"
        return self

    def info(self, info: str) -> "OptionInfo":
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def html(self, html: str) -> "OptionInfo":
        self.comment_after += html
        return self

    def needs_restart(self) -> "OptionInfo":
        self.comment_after += " <span class='info'>(requires restart)</span>"
        return self

    def needs_reload_ui(self) -> "OptionInfo":
        self.reload_required = True
        self.comment_after += " <span class='info'>(requires Reload UI)</span>"
        return self


class OptionHTML(OptionInfo):
    """A block of text in the settings page; it has no value and is not saved."""

    def __init__(self, text: str):
        super().__init__(str(text).strip(), label="", component=None)
        self.do_not_save = True


def options_section(section_identifier: tuple, options_dict: dict, category_id: str | None = None) -> dict:
    for value in options_dict.values():
        if len(section_identifier) == 2:
            value.section = section_identifier
        elif len(section_identifier) == 3:
            value.section, value.category_id = section_identifier[0:2], section_identifier[2]
        if category_id is not None:
            value.category_id = category_id
    return options_dict


class Options:
    """``shared.opts``: ``opts.name`` reads ``data`` or the option's default; setting it runs the
    option's ``onchange``. ``typemap`` and ``restricted_opts`` exist because extensions read them."""

    typemap = {int: float}

    def __init__(self, data_labels: dict[str, OptionInfo] | None = None):
        object.__setattr__(self, "data_labels", dict(data_labels or {}))
        object.__setattr__(self, "data", {k: v.default for k, v in self.data_labels.items() if not v.do_not_save})
        object.__setattr__(self, "restricted_opts", set())

    def __getattr__(self, name: str) -> Any:
        data, labels = self.__dict__["data"], self.__dict__["data_labels"]
        if name in data:
            return data[name]
        if name in labels:
            return labels[name].default
        raise AttributeError(f"no setting named {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.data_labels and name not in self.data:
            object.__setattr__(self, name, value)
            return
        self.set(name, value)

    def set(self, key: str, value: Any, is_api: bool = False, run_callbacks: bool = True) -> bool:
        old = self.data.get(key, None)
        if old == value:
            return False
        info = self.data_labels.get(key)
        if info is not None and info.do_not_save:
            return False
        self.data[key] = value
        if run_callbacks and info is not None and info.onchange is not None:
            try:
                info.onchange()
            except Exception:
                self.data[key] = old
                raise
        return True

    def get_default(self, key: str) -> Any:
        info = self.data_labels.get(key)
        return None if info is None else info.default

    def add_option(self, key: str, info: OptionInfo) -> None:
        self.data_labels[key] = info
        if key not in self.data and not info.do_not_save:
            self.data[key] = info.default

    def onchange(self, key: str, func: Callable, call: bool = True) -> None:
        item = self.data_labels[key]
        item.onchange = func
        if call:
            func()

    def save(self, filename: str | Path) -> None:
        saved = {k: v for k, v in self.data.items() if not (k in self.data_labels and self.data_labels[k].do_not_save)}
        Path(filename).write_text(json.dumps(saved, indent=4, ensure_ascii=False), encoding="utf-8")

    def load(self, filename: str | Path) -> None:
        path = Path(filename)
        if path.is_file():
            self.data.update(json.loads(path.read_text(encoding="utf-8")))

    def same_type(self, x: Any, y: Any) -> bool:
        if x is None or y is None:
            return True
        return isinstance(y, self.typemap.get(type(x), type(x)))

    def dumpjson(self) -> str:
        return json.dumps(self.data)
