"""Styles editor, token counters, and sending an output to inpaint, in a real browser."""

from __future__ import annotations

import pytest

from modules.styles import read_styles
from tests.browser.helpers import choose, open_page, set_number, small_txt2img, wait_for_text

pytestmark = pytest.mark.browser


def test_style_editor_saves_applies_and_deletes_a_style(server, page) -> None:
    open_page(page, server.url)
    page.locator("#txt2img_styles_editor").get_by_text("Edit styles").click()
    name = page.locator("#txt2img_styles_edit_select input").first
    name.fill("Film")
    name.press("Enter")
    page.fill("#txt2img_edit_style_prompt textarea", "{prompt}, grainy film")
    page.fill("#txt2img_edit_style_neg_prompt textarea", "digital")
    page.click("#txt2img_edit_style_save")
    wait_for_text(page, "#txt2img_edit_style_message", "Saved style")
    assert read_styles(server.data_dir / "styles.csv")["Film"].prompt == "{prompt}, grainy film"

    page.fill("#txt2img_prompt textarea", "a cat")
    choose(page, "txt2img_styles", "Film")
    page.click("#txt2img_style_apply")
    assert wait_for_text(page, "#txt2img_prompt textarea", "grainy") == "a cat, grainy film"
    assert page.input_value("#txt2img_neg_prompt textarea") == "digital"
    # Token ids of this prompt are known (CLIP BPE): 8 tokens; past 75 the limit grows by 75.
    page.fill("#txt2img_prompt textarea", "a photograph of an astronaut riding a horse")
    assert wait_for_text(page, "#txt2img_token_counter", "8/75") == "8/75"
    page.fill("#txt2img_prompt textarea", "horse " * 80)
    assert wait_for_text(page, "#txt2img_token_counter", "80/150") == "80/150"

    page.click("#txt2img_edit_style_delete")
    wait_for_text(page, "#txt2img_edit_style_message", "Deleted style")
    assert "Film" not in read_styles(server.data_dir / "styles.csv")


def test_seed_buttons_and_an_output_sent_to_inpaint_with_its_parameters(server, page) -> None:
    open_page(page, server.url)
    small_txt2img(page, "a blue door", steps=2)
    set_number(page, "txt2img_seed", 77)
    page.click("#txt2img_generate")
    wait_for_text(page, "#html_info_txt2img textarea", "Seed: 77")
    page.click("#txt2img_random_seed")
    assert wait_for_text(page, "#txt2img_seed input", "-1") == "-1"
    page.click("#txt2img_reuse_seed")
    assert wait_for_text(page, "#txt2img_seed input", "77") == "77"
    page.click("#txt2img_send_to_inpaint")
    assert wait_for_text(page, "#img2img_prompt textarea", "blue door") == "a blue door"
    assert page.locator("#img2img_seed input").first.input_value() == "77"
    page.locator("#img2img_mask_blur").wait_for()  # inpaint controls shown for the inpaint mode
    page.locator("#img2maskimg", has_text="Upload an image").wait_for(state="detached")  # image arrived
    assert page.get_by_role("tab", name="img2img", exact=True).first.get_attribute("aria-selected") == "true"
    assert page.get_by_role("tab", name="Inpaint", exact=True).first.get_attribute("aria-selected") == "true"


def test_paste_spreads_an_infotext_from_the_prompt_box(server, page) -> None:
    open_page(page, server.url)
    page.fill("#txt2img_prompt textarea", "a quiet harbor\nNegative prompt: people\n"
              "Steps: 9, Sampler: Heun, CFG scale: 3, Seed: 4242, Size: 192x128, Variation seed: 8, "
              "Variation seed strength: 0.3")
    page.click("#tab_txt2img #paste")
    assert wait_for_text(page, "#html_log_txt2img", "Pasted")
    assert page.input_value("#txt2img_prompt textarea") == "a quiet harbor"
    assert page.input_value("#txt2img_neg_prompt textarea") == "people"
    expected = {"txt2img_steps": "9", "txt2img_cfg_scale": "3", "txt2img_seed": "4242", "txt2img_width": "192",
                "txt2img_height": "128", "txt2img_subseed": "8", "txt2img_subseed_strength": "0.3"}
    for elem_id, value in expected.items():
        assert page.locator(f"#{elem_id} input").first.input_value() == value, elem_id
    assert page.locator("#txt2img_subseed_show input").is_checked()
    assert page.locator("#txt2img_sampling input").first.input_value() == "Heun"


def test_a_selected_script_runs_from_the_page(server, page) -> None:
    open_page(page, server.url)
    small_txt2img(page, "a house|red", steps=2)
    choose(page, "script_list", "Prompt matrix")
    page.locator("#script_txt2img_prompt_matrix_different_seeds input").check()  # the script's own ui()
    page.click("#txt2img_generate")
    assert wait_for_text(page, "#html_log_txt2img", "image(s)") == "2 image(s)."
    assert page.locator("#txt2img_gallery img").count() == 2
    assert page.input_value("#html_info_txt2img textarea").startswith("a house\nSteps: 2")


def test_xyz_plot_from_its_own_controls_and_swap(server, page) -> None:
    """X/Y/Z plot's own ui() on the page: the axis dropdown (it sends the index, as A1111's does),
    Swap X/Y, and a plot of two cells: the grid first, then the cells."""
    open_page(page, server.url)
    small_txt2img(page, "a kite", steps=2)
    choose(page, "script_list", "X/Y/Z plot")
    choose(page, "script_txt2img_x_y_z_plot_x_type", "Steps")
    page.fill("#script_txt2img_x_y_z_plot_x_values textarea", "1, 2")
    page.locator("#xy_grid_swap_axes_button").first.click()
    assert wait_for_text(page, "#script_txt2img_x_y_z_plot_y_values textarea", "1, 2") == "1, 2"
    assert page.locator("#script_txt2img_x_y_z_plot_y_type input").first.input_value() == "Steps"
    page.locator("#xy_grid_swap_axes_button").first.click()  # back: Steps on X
    assert wait_for_text(page, "#script_txt2img_x_y_z_plot_x_values textarea", "1, 2") == "1, 2"
    page.locator("#script_txt2img_x_y_z_plot_include_lone_images input").check()
    page.click("#txt2img_generate")
    assert wait_for_text(page, "#html_log_txt2img", "image(s)") == "3 image(s)."
    assert "X Type: Steps" in page.input_value("#html_info_txt2img textarea")
