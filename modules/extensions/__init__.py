"""The extension runtime: scripts (selectable and always-on) and their registry (DESIGN §8).

A1111's ``modules.extensions`` names resolve here too (its compatibility surface, kept in
``a1111_extensions``): ``extensions`` (a list), ``active()``, ``Extension``, ``extensions_dir``,
``extensions_builtin_dir``, ``extension_paths``, ``find_extension``. They are read on access, so
importing this package loads nothing and each read answers from the Runtime bound now.
"""

from __future__ import annotations

from typing import Any

_LISTED = ("extensions", "extensions_dir", "extensions_builtin_dir", "extension_paths")  # values, not functions
_CALLABLE = ("active", "find_extension", "Extension")


def __getattr__(name: str) -> Any:
    if name in _LISTED or name in _CALLABLE:
        from modules.extensions import a1111_extensions

        value = getattr(a1111_extensions, name)
        return value() if name in _LISTED else value
    raise AttributeError(f"module 'modules.extensions' has no attribute {name!r}")
