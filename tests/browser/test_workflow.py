"""Styles editor, token counters, and sending an output to inpaint, in a real browser."""

from __future__ import annotations

import pytest

from modules.styles import read_styles
from tests.browser.helpers import choose, open_page, set_number, small_txt2img, wait_for_text

pytestmark = pytest.mark.browser


def test_style_editor_saves_applies_and_deletes_a_style(server, page) -> None:
    open_page(page, server.url)
    page.locator("#txt2img-style-editor").get_by_text("Edit styles").click()
    name = page.locator("#txt2img-style-name input").first
    name.fill("Film")
    name.press("Enter")
    page.fill("#txt2img-style-prompt textarea", "{prompt}, grainy film")
    page.fill("#txt2img-style-negative textarea", "digital")
    page.click("#txt2img-style-save")
    wait_for_text(page, "#txt2img-style-message", "Saved style")
    assert read_styles(server.data_dir / "styles.csv")["Film"].prompt == "{prompt}, grainy film"

    page.fill("#txt2img-prompt textarea", "a cat")
    choose(page, "txt2img-styles", "Film")
    page.click("#txt2img-apply-styles")
    assert wait_for_text(page, "#txt2img-prompt textarea", "grainy") == "a cat, grainy film"
    assert page.input_value("#txt2img-negative-prompt textarea") == "digital"
    # Token ids of this prompt are known (CLIP BPE): 8 tokens; past 75 the limit grows by 75.
    page.fill("#txt2img-prompt textarea", "a photograph of an astronaut riding a horse")
    assert wait_for_text(page, "#txt2img-token-counter", "8/75") == "8/75"
    page.fill("#txt2img-prompt textarea", "horse " * 80)
    assert wait_for_text(page, "#txt2img-token-counter", "80/150") == "80/150"

    page.click("#txt2img-style-delete")
    wait_for_text(page, "#txt2img-style-message", "Deleted style")
    assert "Film" not in read_styles(server.data_dir / "styles.csv")


def test_seed_buttons_and_an_output_sent_to_inpaint_with_its_parameters(server, page) -> None:
    open_page(page, server.url)
    small_txt2img(page, "a blue door", steps=2)
    set_number(page, "txt2img-seed", 77)
    page.click("#txt2img-generate")
    wait_for_text(page, "#txt2img-infotext textarea", "Seed: 77")
    page.click("#txt2img-random-seed")
    assert wait_for_text(page, "#txt2img-seed input", "-1") == "-1"
    page.click("#txt2img-reuse-seed")
    assert wait_for_text(page, "#txt2img-seed input", "77") == "77"
    page.click("#txt2img-send-inpaint")
    assert wait_for_text(page, "#img2img-prompt textarea", "blue door") == "a blue door"
    assert page.locator("#img2img-seed input").first.input_value() == "77"
    page.locator("#img2img-mask-blur").wait_for()  # inpaint controls shown for the inpaint mode
    page.locator("#img2img-inpaint-editor", has_text="Upload an image").wait_for(state="detached")  # image arrived
    assert page.get_by_role("tab", name="img2img", exact=True).first.get_attribute("aria-selected") == "true"
    assert page.get_by_role("tab", name="Inpaint", exact=True).first.get_attribute("aria-selected") == "true"


def test_paste_spreads_an_infotext_from_the_prompt_box(server, page) -> None:
    open_page(page, server.url)
    page.fill("#txt2img-prompt textarea", "a quiet harbor\nNegative prompt: people\n"
              "Steps: 9, Sampler: Heun, CFG scale: 3, Seed: 4242, Size: 192x128, Variation seed: 8, "
              "Variation seed strength: 0.3")
    page.click("#txt2img-paste")
    assert wait_for_text(page, "#txt2img-status", "Pasted")
    assert page.input_value("#txt2img-prompt textarea") == "a quiet harbor"
    assert page.input_value("#txt2img-negative-prompt textarea") == "people"
    expected = {"txt2img-steps": "9", "txt2img-cfg-scale": "3", "txt2img-seed": "4242", "txt2img-width": "192",
                "txt2img-height": "128", "txt2img-subseed": "8", "txt2img-subseed-strength": "0.3"}
    for elem_id, value in expected.items():
        assert page.locator(f"#{elem_id} input").first.input_value() == value, elem_id
    assert page.locator("#txt2img-seed-extra input").is_checked()
    assert page.locator("#txt2img-sampling input").first.input_value() == "Heun"


def test_a_selected_script_runs_from_the_page(server, page) -> None:
    open_page(page, server.url)
    small_txt2img(page, "a house|red", steps=2)
    choose(page, "txt2img-script", "Prompt matrix")
    page.locator("#script_txt2img_prompt_matrix_different_seeds input").check()  # the script's own ui()
    page.click("#txt2img-generate")
    assert wait_for_text(page, "#txt2img-status", "image(s)") == "2 image(s)."
    assert page.locator("#txt2img-gallery img").count() == 2
    assert page.input_value("#txt2img-infotext textarea").startswith("a house\nSteps: 2")


def test_xyz_plot_from_its_own_controls_and_swap(server, page) -> None:
    """X/Y/Z plot's own ui() on the page: the axis dropdown (it sends the index, as A1111's does),
    Swap X/Y, and a plot of two cells: the grid first, then the cells."""
    open_page(page, server.url)
    small_txt2img(page, "a kite", steps=2)
    choose(page, "txt2img-script", "X/Y/Z plot")
    choose(page, "script_txt2img_x_y_z_plot_x_type", "Steps")
    page.fill("#script_txt2img_x_y_z_plot_x_values textarea", "1, 2")
    page.locator("#xy_grid_swap_axes_button").first.click()
    assert wait_for_text(page, "#script_txt2img_x_y_z_plot_y_values textarea", "1, 2") == "1, 2"
    assert page.locator("#script_txt2img_x_y_z_plot_y_type input").first.input_value() == "Steps"
    page.locator("#xy_grid_swap_axes_button").first.click()  # back: Steps on X
    assert wait_for_text(page, "#script_txt2img_x_y_z_plot_x_values textarea", "1, 2") == "1, 2"
    page.locator("#script_txt2img_x_y_z_plot_include_lone_images input").check()
    page.click("#txt2img-generate")
    assert wait_for_text(page, "#txt2img-status", "image(s)") == "3 image(s)."
    assert "X Type: Steps" in page.input_value("#txt2img-infotext textarea")
