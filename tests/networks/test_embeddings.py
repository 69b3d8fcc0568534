"""Textual inversion: files in every format on disk, substitution at the encoder's input,
width checks, TI hashes in the infotext, reloading, and the Runtime's view."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modules.infotext.parse import parse_infotext
from modules.nets.text_encoders import TextEncoder
from modules.nets.tokenizer import build_clip_tokenizer
from modules.networks.embeddings import EmbeddingLibrary, read_embedding
from modules.params import Txt2ImgParams
from modules.pipeline.conditioning import PromptOptions, encode_texts, prompt_token_count
from modules.pipeline.generate import generate_txt2img
from tests.models.family_configs import clip_l_text
from tests.pipeline.test_sampling_run import model  # noqa: F401  (module-scoped tiny model fixture, width 32)

WIDTH = 32


def vectors(count: int, width: int = WIDTH, seed: int = 0) -> torch.Tensor:
    return torch.randn(count, width, generator=torch.Generator().manual_seed(seed))


def write_a1111_pt(path: Path, vecs: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vecs}, "name": "ignored-name",
                "step": 1500, "sd_checkpoint": "6ce0161689", "sd_checkpoint_name": "v1-5-pruned-emaonly"}, path)


def write_all_formats(folder: Path) -> dict[str, torch.Tensor]:
    written = {"pt_style": vectors(2, seed=1), "bin_style": vectors(1, seed=2), "st_style": vectors(3, seed=3)}
    write_a1111_pt(folder / "pt_style.pt", written["pt_style"])
    torch.save({"<bin-style>": written["bin_style"][0]}, folder / "bin_style.bin")  # diffusers: one 1-D vector
    (folder / "nested").mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": written["st_style"]}, str(folder / "nested" / "st_style.safetensors"))
    save_file({"clip_l": vectors(2, 768), "clip_g": vectors(2, 1280)}, str(folder / "xl_style.safetensors"))
    save_file({"emb_params": vectors(2, 64)}, str(folder / "wide_style.safetensors"))
    return written


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    encoder = TextEncoder(clip_l_text(width=WIDTH, layers=2, intermediate=64)).eval()
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return encoder


def test_every_format_is_read_with_its_metadata(tmp_path: Path) -> None:
    written = write_all_formats(tmp_path)
    found = EmbeddingLibrary([tmp_path]).current()
    assert set(found.loaded) == {"pt_style", "bin_style", "st_style", "xl_style", "wide_style"} and not found.errors
    for name, vecs in written.items():
        assert torch.equal(found.loaded[name].vectors, vecs)
    pt = found.loaded["pt_style"]
    assert (pt.step, pt.sd_checkpoint, pt.sd_checkpoint_name, pt.shape, pt.count) == (
        1500, "6ce0161689", "v1-5-pruned-emaonly", WIDTH, 2)
    assert found.loaded["bin_style"].count == 1 and found.loaded["bin_style"].step is None
    assert pt.sha256 == hashlib.sha256((tmp_path / "pt_style.pt").read_bytes()).hexdigest()


def test_width_mismatches_are_skipped(tmp_path: Path) -> None:
    write_all_formats(tmp_path)
    judged = EmbeddingLibrary([tmp_path]).current().for_width(WIDTH)
    assert set(judged.loaded) == {"pt_style", "bin_style", "st_style"}
    assert set(judged.skipped) == {"xl_style", "wide_style"}
    assert judged.skipped["wide_style"].shape == 64 and judged.skipped["xl_style"].shape == 768 + 1280


def test_unreadable_and_unsafe_files_are_listed_not_raised(tmp_path: Path) -> None:
    torch.save({"string_to_param": {"*": vectors(1)}, "evil": Path("x")}, tmp_path / "unsafe.pt")
    torch.save({"a": vectors(1), "b": vectors(1)}, tmp_path / "two.pt")
    (tmp_path / "broken.safetensors").write_bytes(b"not a file")
    found = EmbeddingLibrary([tmp_path]).current()
    assert not found.loaded
    assert "refused" in found.errors["unsafe"]
    assert "not a textual inversion embedding" in found.errors["two"]
    assert "safetensors" in found.errors["broken"]


@pytest.mark.parametrize("name", ["pt_style", "bin_style", "st_style"])
def test_trigger_word_is_replaced_by_the_vectors_at_the_encoder_input(tmp_path: Path, tokenizer, encoder, name: str) -> None:
    written = write_all_formats(tmp_path)
    options = PromptOptions(embeddings=EmbeddingLibrary([tmp_path]).current())
    seen: list[torch.Tensor] = []
    embeddings_module = encoder.transformer.embeddings  # output = token vectors + position vectors
    handle = embeddings_module.register_forward_hook(lambda module, args, out: seen.append(out.detach().clone()))
    try:
        with torch.no_grad():
            _, used = encode_texts(encoder, tokenizer, [f"a {name}, photo"], options=options)
    finally:
        handle.remove()
    token_inputs = seen[0][0] - embeddings_module.position_embedding.weight[:77]
    count = written[name].shape[0]
    assert torch.allclose(token_inputs[2 : 2 + count], written[name], atol=1e-6)  # after BOS and "a"
    table = encoder.transformer.get_input_embeddings().weight
    comma = tokenizer(",", add_special_tokens=False).input_ids[0]
    assert torch.allclose(token_inputs[2 + count], table[comma], atol=1e-6)  # the prompt goes on after it
    assert [e.name for e in used] == [name]


def test_skipped_embedding_is_not_substituted(tmp_path: Path, tokenizer, encoder) -> None:
    write_all_formats(tmp_path)
    options = PromptOptions(embeddings=EmbeddingLibrary([tmp_path]).current())
    with torch.no_grad():
        with_library, used = encode_texts(encoder, tokenizer, ["a wide_style"], options=options)
        without, _ = encode_texts(encoder, tokenizer, ["a wide_style"])
    assert used == () and torch.equal(with_library, without)


def test_token_counter_counts_embedding_vectors(tmp_path: Path, tokenizer) -> None:
    write_all_formats(tmp_path)
    options = PromptOptions(embeddings=EmbeddingLibrary([tmp_path]).current().for_width(WIDTH))
    assert prompt_token_count(tokenizer, "a st_style", options) == (4, 75)  # "a" + 3 vectors
    assert prompt_token_count(tokenizer, "a st_style") == (len(tokenizer("a st_style", add_special_tokens=False).input_ids), 75)


def test_reload_picks_up_new_changed_and_removed_files(tmp_path: Path) -> None:
    library = EmbeddingLibrary([tmp_path])
    assert not library.current().loaded
    write_a1111_pt(tmp_path / "late.pt", vectors(1, seed=9))
    assert set(library.current().loaded) == {"late"}
    write_a1111_pt(tmp_path / "late.pt", vectors(4, seed=9))
    os.utime(tmp_path / "late.pt", ns=(1, 1))  # a different mtime even on coarse clocks
    assert library.current().loaded["late"].count == 4
    (tmp_path / "late.pt").unlink()
    assert not library.current().loaded


def test_ti_hashes_in_the_infotext_for_the_embeddings_used(model, tmp_path: Path) -> None:  # noqa: F811
    write_all_formats(tmp_path)
    options = PromptOptions(embeddings=EmbeddingLibrary([tmp_path]).current())
    params = Txt2ImgParams(prompt="a pt_style cat, (st_style:1.2)", negative_prompt="bin_style", steps=1,
                           width=8, height=8, seed=3)
    fields = parse_infotext(generate_txt2img(model, params, None, prompt_options=options)[0].infotext)
    digest = {name: hashlib.sha256(path.read_bytes()).hexdigest()[:12] for name, path in (
        ("pt_style", tmp_path / "pt_style.pt"), ("st_style", tmp_path / "nested" / "st_style.safetensors"),
        ("bin_style", tmp_path / "bin_style.bin"))}
    assert fields["TI hashes"] == ", ".join(f"{n}: {digest[n]}" for n in ("pt_style", "st_style", "bin_style"))
    unused = Txt2ImgParams(prompt="a cat wide_style", steps=1, width=8, height=8, seed=3)
    assert "TI hashes" not in parse_infotext(generate_txt2img(model, unused, None, prompt_options=options)[0].infotext)


def test_read_embedding_names_the_file_by_its_stem(tmp_path: Path) -> None:
    write_a1111_pt(tmp_path / "My Style.pt", vectors(1))
    assert read_embedding(tmp_path / "My Style.pt").name == "My Style"  # the file name, not the stored "name"


def test_runtime_lists_loaded_and_skipped_for_the_default_model(tmp_path: Path) -> None:
    from tests.test_runtime import make_runtime, write_tiny_checkpoint
    from tests.nets.checkpoints import TINY_SD1_TEXT

    write_tiny_checkpoint(tmp_path / "models" / "Stable-diffusion" / "alpha.safetensors", seed=1)
    folder = tmp_path / "models" / "embeddings"
    folder.mkdir(parents=True)
    save_file({"emb_params": vectors(2, TINY_SD1_TEXT.hidden_size)}, str(folder / "fits.safetensors"))
    save_file({"emb_params": vectors(2, TINY_SD1_TEXT.hidden_size + 8)}, str(folder / "other.safetensors"))
    runtime = make_runtime(tmp_path)
    listed = runtime.embeddings()
    assert set(listed.loaded) == {"fits"} and set(listed.skipped) == {"other"}
    assert listed.loaded["fits"].count == 2 and listed.loaded["fits"].shape == TINY_SD1_TEXT.hidden_size
    save_file({"emb_params": vectors(1, TINY_SD1_TEXT.hidden_size)}, str(folder / "new.safetensors"))
    assert set(runtime.embeddings(refresh=True).loaded) == {"fits", "new"}
    assert set(runtime.prompt_options().embeddings.loaded) >= {"fits", "new"}


def test_submitted_job_uses_embeddings_and_strips_comments(tmp_path: Path) -> None:
    from tests.nets.checkpoints import TINY_SD1_UNET, TINY_SD1_VAE, make_ldm_checkpoint
    from tests.test_runtime import make_runtime

    folder = tmp_path / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    save_file(make_ldm_checkpoint(TINY_SD1_UNET, TINY_SD1_VAE, clip_l_text(WIDTH, 2, 64), seed=4),
              str(folder / "full.safetensors"))  # the full vocabulary, width 32
    write_a1111_pt(tmp_path / "models" / "embeddings" / "shiny.pt", vectors(2))
    runtime = make_runtime(tmp_path)
    params = Txt2ImgParams(prompt="a shiny cat # not part of the prompt", steps=1, width=64, height=64, seed=5)
    result = runtime.submit(params).future.result(timeout=120)[0]
    fields = parse_infotext(result.infotext)
    digest = hashlib.sha256((tmp_path / "models" / "embeddings" / "shiny.pt").read_bytes()).hexdigest()[:12]
    assert fields["TI hashes"] == f"shiny: {digest}"
    assert fields["Prompt"] == "a shiny cat" and "not part" not in result.infotext
