"""The page carries AUTOMATIC1111 v1.10.1's element ids, which extensions' JavaScript and CSS look up
(the ids are A1111's modules/ui.py, ui_toprow.py, ui_common.py, ui_settings.py, ui_postprocessing.py,
ui_checkpoint_merger.py and processing_scripts/*.py)."""

from __future__ import annotations

from collections import Counter

import pytest
from fastapi.testclient import TestClient

from modules.config import build_arg_parser, config_from_args
from modules.runtime import Runtime
from webui.app import create_app

# elem_id -> the component type Gradio reports for it.
A1111_IDS = {
    "tabs": "tabs", "tab_txt2img": "tabitem", "tab_img2img": "tabitem", "tab_extras": "tabitem",
    "tab_pnginfo": "tabitem", "tab_modelmerger": "tabitem", "tab_settings": "tabitem", "tab_extensions": "tabitem",
    "quicksettings": "row", "setting_sd_model_checkpoint": "dropdown", "refresh_sd_model_checkpoint": "button",
    "setting_sd_vae": "dropdown",
    "script_list": "dropdown", "paste": "button", "resize_mode": "radio", "inpaint_controls": "group",
    "mode_img2img": "tabs", "img2img_img2img_tab": "tabitem", "img2img_inpaint_tab": "tabitem",
    "img2img_batch_tab": "tabitem", "img2img_image": "image", "img2maskimg": "imageeditor",
    "img2img_sketch": "imageeditor", "inpaint_sketch": "imageeditor", "img_inpaint_base": "image",
    "img_inpaint_mask": "image", "img2img_batch_input_dir": "textbox", "img2img_denoising_strength": "slider",
    "img2img_mask_blur": "slider", "img2img_inpainting_fill": "radio", "img2img_scale": "slider",
    "txt2img_hr": "accordion", "txt2img_enable_hr": "checkbox", "txt2img_hr_upscaler": "dropdown",
    "txt2img_hires_steps": "slider", "txt2img_denoising_strength": "slider", "txt2img_hr_scale": "slider",
    "settings_submit": "button", "settings_result": "markdown", "settings": "tabs", "setting_samples_format": "radio",
    "pnginfo_image": "image", "pnginfo_generation_info": "textbox", "txt2img_tab": "button", "img2img_tab": "button",
    "mode_extras": "tabs", "extras_image": "image", "extras_generate": "button", "extras_gallery": "gallery",
    "extras_upscaler_1": "dropdown", "extras_upscaling_resize": "slider",
    "modelmerger_primary_model_name": "dropdown", "modelmerger_merge": "button", "modelmerger_interp_amount": "slider",
    "extensions_apply": "button",
}
PER_TAB = {
    "toprow": "row", "prompt": "textbox", "neg_prompt": "textbox", "generate": "button", "interrupt": "button",
    "skip": "button", "styles": "dropdown", "style_apply": "button", "clear_prompt": "button",
    "token_counter": "markdown", "negative_token_counter": "markdown", "settings": "column",
    "script_container": "column", "sampling": "dropdown", "scheduler": "dropdown", "steps": "slider",
    "width": "slider", "height": "slider", "batch_count": "slider", "batch_size": "slider", "cfg_scale": "slider",
    "seed": "number", "random_seed": "button", "reuse_seed": "button", "subseed_show": "checkbox",
    "subseed": "number", "subseed_strength": "slider", "seed_resize_from_w": "slider", "gallery": "gallery",
    "open_folder": "button", "send_to_img2img": "button", "send_to_inpaint": "button", "res_switch_btn": "button",
}
for tab in ("txt2img", "img2img"):
    A1111_IDS.update({f"{tab}_{name}": kind for name, kind in PER_TAB.items()})
    A1111_IDS.update({f"html_info_{tab}": "textbox", f"html_log_{tab}": "markdown", f"save_{tab}": "button"})
# A1111 itself gives these ids to a control of each generation tab.
SHARED_BY_BOTH_TABS = {"paste", "script_list"}


@pytest.fixture(scope="module")
def page_config(tmp_path_factory):
    data = tmp_path_factory.mktemp("ids")
    args = build_arg_parser().parse_args(["--data-dir", str(data), "--skip-install"])
    with TestClient(create_app(Runtime(config_from_args(args, data)))) as client:
        yield client.get("/config").json()


def element_ids(config: dict) -> Counter:
    return Counter(c["props"]["elem_id"] for c in config["components"] if c.get("props", {}).get("elem_id"))


def test_main_controls_carry_a1111_ids_on_the_matching_component(page_config) -> None:
    kinds: dict[str, set[str]] = {}
    for component in page_config["components"]:
        elem_id = component.get("props", {}).get("elem_id")
        if elem_id:
            kinds.setdefault(elem_id, set()).add(component["type"])
    missing = sorted(set(A1111_IDS) - set(kinds))
    assert not missing, missing
    wrong = {i: (kinds[i], kind) for i, kind in A1111_IDS.items() if kinds[i] != {kind}}
    assert not wrong, wrong


def test_ids_use_underscores_and_only_a1111s_shared_ids_repeat(page_config) -> None:
    ids = element_ids(page_config)
    assert [i for i in ids if "-" in i] == []
    assert {i for i, count in ids.items() if count > 1} == SHARED_BY_BOTH_TABS


def test_blocks_carry_a1111s_gradio_classes(page_config) -> None:
    """A1111 gives each block the class ``gradio-<block name>`` (and ``multiselect``), which extensions select on."""
    classes = {c["props"]["elem_id"]: c["props"].get("elem_classes") for c in page_config["components"]
               if c.get("props", {}).get("elem_id")}
    assert "gradio-textbox" in classes["txt2img_prompt"]
    assert "gradio-dropdown" in classes["txt2img_sampling"]
    assert "gradio-button" in classes["txt2img_generate"]
    assert "gradio-accordion" in classes["txt2img_hr"]
    assert "gradio-slider" in classes["txt2img_steps"]
    assert {"gradio-dropdown", "multiselect"} <= set(classes["txt2img_styles"])
    assert "token-counter" in classes["txt2img_token_counter"]  # a block's own classes stay
