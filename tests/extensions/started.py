"""A Runtime and app started the way ``launch.py`` starts them (flags parsed with the extensions'
own, extensions loaded), over a data dir with the given extension files; and the teardown that
leaves the A1111 compatibility modules' globals as a fresh process has them."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from fastapi.testclient import TestClient

from modules import script_callbacks, scripts, shared
from modules.compat_options import Options
from modules.extensions.startup import ExtensionSet, parse_config_with_extensions
from modules.runtime import Runtime
from webui import gradio3_compat
from webui.app import create_app


@dataclass
class Started:
    client: TestClient
    runtime: Runtime
    found: ExtensionSet

    def extension(self, name: str):
        return next(e for e in self.found.extensions if e.name == name)

    def module(self, name: str):
        """The first scripts/ module of extension ``name``."""
        return self.extension(name).modules[0]

    @property
    def blocks(self):
        return self.client.app.router.routes[-1].app.get_blocks()


@contextlib.contextmanager
def started_app(data_dir: Path, extensions: dict[str, dict[str, str]], *flags: str) -> Iterator[Started]:
    """``extensions``: {extension name: {path inside it: file text}}."""
    for name, files in extensions.items():
        for relative, text in files.items():
            path = data_dir / "extensions" / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    shared.opts = Options()
    gradio3_compat.install()  # as ``webui.server.serve`` does, before extensions' scripts are imported
    config, found = parse_config_with_extensions(["--data-dir", str(data_dir), "--skip-install", *flags], data_dir)
    runtime = Runtime(config, cuda_available=False)
    runtime.load_extensions(found)
    try:
        with TestClient(create_app(runtime)) as client:
            yield Started(client, runtime, found)
    finally:
        runtime.jobs.shutdown()
        script_callbacks.clear_callbacks()
        scripts.scripts_data.clear()
        shared.opts = Options()
        shared._bound.clear()
