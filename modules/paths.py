"""A1111 compatibility surface: ``modules.paths`` (``script_path``, ``models_path``, ``data_path``)."""

from __future__ import annotations

import os

script_path = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
data_path = script_path
models_path = os.path.join(script_path, "models")
extensions_dir = os.path.join(script_path, "extensions")
extensions_builtin_dir = os.path.join(script_path, "extensions-builtin")
