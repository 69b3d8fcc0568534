"""``modules.hashes``, ``sd_models``, ``sd_hijack``, ``ui_components`` and ``ui`` as extensions use
them, answering from a Runtime bound at start."""

from __future__ import annotations

import hashlib
import json
import struct

import gradio as gr
import pytest

from modules import hashes, sd_hijack, sd_models, shared, ui, ui_components
from modules.config import parse_config
from modules.extensions.startup import bind_compat_surface
from modules.runtime import Runtime
from tests.api.conftest import write_embedding, write_tiny_model


@pytest.fixture()
def bound(tmp_path):
    write_tiny_model(tmp_path / "models" / "Stable-diffusion" / "sub" / "tiny.safetensors", seed=1)
    write_embedding(tmp_path / "models" / "embeddings" / "shiny.safetensors", count=2, width=32)
    runtime = Runtime(parse_config(["--data-dir", str(tmp_path)], tmp_path))
    bind_compat_surface(runtime)
    yield runtime
    shared._bound.clear()
    sd_models.checkpoints_list.clear()
    sd_models.checkpoint_aliases.clear()
    sd_hijack.model_hijack.embedding_db.word_embeddings = {}


def safetensors_bytes(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def test_addnet_hash_ignores_the_header_and_sha256_is_cached(tmp_path, bound):
    body = bytes(range(256)) * 10
    one, two = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    one.write_bytes(safetensors_bytes({"__metadata__": {"x": "1"}}, body))
    two.write_bytes(safetensors_bytes({"__metadata__": {"x": "a longer value"}}, body))
    expected = hashlib.sha256(body).hexdigest()
    assert hashes.sha256(str(one), "lora/a", use_addnet_hash=True) == expected
    assert hashes.sha256(str(two), "lora/b", use_addnet_hash=True) == expected
    assert hashes.sha256_from_cache(str(one), "a") is None  # not hashed yet
    whole = hashes.sha256(str(one), "a")
    assert whole == hashlib.sha256(one.read_bytes()).hexdigest() == hashes.calculate_sha256(str(one))
    assert hashes.sha256_from_cache(str(one), "a") == whole


def test_checkpoint_list_aliases_and_selection_follow_the_runtime(bound):
    path = bound.checkpoints()[0].path
    info = sd_models.select_checkpoint()
    assert info.filename == str(path) and info.model_name == "sub_tiny" and info.name == "sub/tiny.safetensors"
    assert sd_models.checkpoint_aliases["sub_tiny"].filename == str(path)
    assert list(sd_models.checkpoints_list) == [bound.checkpoints()[0].title]
    with open(path, "rb") as handle:
        handle.seek(0x100000)
        old = hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]
    assert info.hash == old
    assert sd_models.get_closet_checkpoint_match("tiny").filename == str(path)


def test_embedding_db_lists_the_runtime_embeddings(bound):
    db = sd_hijack.model_hijack.embedding_db
    shiny = db.word_embeddings["shiny"]
    assert (shiny.shape, shiny.vectors) == (32, 2) and shiny.filename.endswith("shiny.safetensors")


def test_unbound_modules_answer_empty():
    assert shared.bound_runtime() is None
    sd_models.list_models()
    assert sd_models.checkpoints_list == {} and sd_models.select_checkpoint() is None


def test_ui_components_render_as_their_gradio_bases_and_input_accordion_is_a_value():
    with gr.Blocks() as blocks:
        with ui_components.InputAccordion(False, label="My ext", elem_id="my-acc") as enabled:
            with ui_components.FormRow():
                choice = ui_components.DropdownMulti(choices=["a", "b"], label="Pick")
                ui.create_refresh_button(choice, lambda: None, lambda: {"choices": ["a", "b", "c"]}, "my-refresh")
    config = blocks.get_config_file()
    by_id = {c["id"]: c for c in config["components"]}
    assert by_id[enabled._id]["type"] == "checkbox" and by_id[enabled._id]["props"]["visible"] is False
    assert by_id[enabled.accordion._id]["type"] == "accordion"
    assert by_id[enabled.accordion._id]["props"]["elem_id"] == "my-acc"
    assert by_id[choice._id]["type"] == "dropdown" and by_id[choice._id]["props"]["multiselect"] is True
    button = next(c for c in config["components"] if c["props"].get("elem_id") == "my-refresh")
    assert button["type"] == "button" and button["props"]["value"] == ui.refresh_symbol
    refresh = next(f for f in blocks.fns.values() if f.outputs == [choice])
    assert refresh.fn()["choices"] == ["a", "b", "c"]
    expand = [f for f in blocks.fns.values() if f.outputs == [enabled]]
    assert sorted(f.fn() for f in expand) == [False, True]  # collapse -> False, expand -> True
