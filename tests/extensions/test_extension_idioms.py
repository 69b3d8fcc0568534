"""An extension written with the idioms of popular A1111 extensions (prompt autocompletion
helpers): a helper module imported as ``scripts.<name>`` with a bare-name fallback, paths built at
import from ``modules.paths``, ``cmd_opts`` folder flags and ``scripts.basedir()``, the styles and
embeddings read through ``shared.prompt_styles`` and ``sd_hijack``, FastAPI routes added in
``on_app_started``, settings with Gradio components and choice functions, several JS files."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modules import script_callbacks, scripts, shared
from modules.compat_options import Options
from modules.extensions.startup import parse_config_with_extensions
from modules.runtime import Runtime
from tests.api.conftest import write_embedding
from webui.app import create_app

PATHS = '''
from pathlib import Path
from modules import scripts, shared
try:
    from modules.paths import extensions_dir, script_path
    EXT_PATH = Path(extensions_dir).absolute()
except ImportError:
    EXT_PATH = Path().absolute().joinpath("extensions")
DATA_PATH = Path(scripts.basedir()).joinpath("data").absolute()
EMB_PATH = Path(shared.cmd_opts.embeddings_dir).absolute()
try:
    LORA_PATH = Path(shared.cmd_opts.lora_dir).absolute()
except (AttributeError, TypeError):
    LORA_PATH = None
'''

HELPER = '''
import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from modules import hashes, script_callbacks, sd_models, shared
try:
    from scripts.idiom_paths import DATA_PATH, EMB_PATH, EXT_PATH, LORA_PATH
except ImportError:
    from idiom_paths import DATA_PATH, EMB_PATH, EXT_PATH, LORA_PATH
try:
    from modules import sd_hijack
except ImportError:
    sd_hijack = None

def style_names():
    return sorted(shared.prompt_styles.styles.keys()) if shared.prompt_styles is not None else []

def tag_files():
    return sorted(p.name for p in DATA_PATH.glob("*.csv"))

def on_ui_settings():
    section = ("idiom", "Idiom autocomplete")
    shared.opts.add_option("idiom_tag_file", shared.OptionInfo(
        "tags.csv", "Tag file", gr.Dropdown, lambda: {"choices": tag_files()}, section=section))
    shared.opts.add_option("idiom_active", shared.OptionInfo(True, "Active", section=section))

def api(_: gr.Blocks, app: FastAPI):
    @app.get("/idiomapi/v1/info")
    async def info():
        embeddings = sorted(sd_hijack.model_hijack.embedding_db.word_embeddings) if sd_hijack else []
        return JSONResponse({"styles": style_names(), "embeddings": embeddings, "tag_files": tag_files(),
                             "emb_path": str(EMB_PATH), "ext_path": str(EXT_PATH), "lora_path": str(LORA_PATH),
                             "checkpoints": len(sd_models.checkpoints_list), "active": shared.opts.idiom_active})

script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_app_started(api)
'''


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture()
def client(tmp_path):
    ext = tmp_path / "extensions" / "idiom-ext"
    write(ext / "scripts" / "idiom_paths.py", PATHS)
    write(ext / "scripts" / "idiom_helper.py", HELPER)
    write(ext / "data" / "tags.csv", "1girl,0\n")
    write(ext / "javascript" / "__globals.js", "var IDIOM_CFG = {};\n")
    write(ext / "javascript" / "idiomAutocomplete.js", "IDIOM_CFG.ready = true;\n")
    write(tmp_path / "styles.csv", "name,prompt,negative_prompt\nink,{prompt} in ink,\n")
    write_embedding(tmp_path / "models" / "embeddings" / "shiny.safetensors", count=1, width=32)
    shared.opts = Options()
    config, found = parse_config_with_extensions(["--data-dir", str(tmp_path), "--skip-install"], tmp_path)
    runtime = Runtime(config)
    runtime.load_extensions(found)
    assert [found.state_of(e) for e in found.extensions] == ["loaded"], [e.errors for e in found.extensions]
    yield TestClient(create_app(runtime))
    script_callbacks.clear_callbacks()
    scripts.scripts_data.clear()
    shared.opts = Options()
    shared._bound.clear()


def test_idioms_of_autocomplete_extensions_work(client, tmp_path):
    info = client.get("/idiomapi/v1/info").json()
    assert info["styles"] == ["ink"] and info["embeddings"] == ["shiny"] and info["tag_files"] == ["tags.csv"]
    assert info["emb_path"] == str(tmp_path / "models" / "embeddings")
    assert info["lora_path"] == str(tmp_path / "models" / "Lora")
    assert info["ext_path"] == str(tmp_path / "extensions") and info["active"] is True
    config = client.get("/config").json()
    assert config["head"].index("var IDIOM_CFG") < config["head"].index("IDIOM_CFG.ready")  # "__" sorts first
    ids = {c["props"].get("elem_id"): c for c in config["components"]}
    dropdown = ids["setting_idiom_tag_file"]
    assert dropdown["type"] == "dropdown" and [c[0] for c in dropdown["props"]["choices"]] == ["tags.csv"]
