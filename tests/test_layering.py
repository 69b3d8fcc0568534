"""Layers point down: the value types import no pipeline, no model code, no nets and no UI; the
samplers know nothing of model files; the merger knows nothing of the Runtime. Each import runs in
a fresh interpreter, so what it pulls in is all its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UPPER = ("modules.pipeline", "modules.models", "modules.nets", "modules.runtime", "webui", "gradio")


def imported_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module", ["modules.params", "modules.job_spec", "modules.infotext.format",
                                    "modules.infotext.parse", "modules.infotext.apply", "modules.infotext.fields", "modules.pipeline.hooks"])
def test_value_types_pull_in_nothing_from_above(module: str) -> None:
    allowed = {"modules.pipeline", "modules.pipeline.hooks"} if module == "modules.pipeline.hooks" else set()
    above = sorted(m for m in imported_by(module) - allowed if m.startswith(UPPER))
    assert above == []


def test_sampling_knows_nothing_of_model_files() -> None:
    loaded = imported_by("modules.sampling.denoiser") | imported_by("modules.sampling.catalog")
    assert sorted(m for m in loaded if m.startswith(UPPER)) == []


def test_the_merger_takes_files_and_options_not_the_runtime() -> None:
    loaded = imported_by("modules.models.merge")
    assert "modules.runtime" not in loaded and not any(m.startswith(("webui", "gradio")) for m in loaded)
