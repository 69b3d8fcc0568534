"""txt2img end to end on a tiny model: files with infotext, seeds, interrupt and skip."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from modules.infotext.files import read_infotext
from modules.infotext.parse import parse_infotext
from modules.jobs import Job
from modules.params import ParamsError, Txt2ImgParams
from modules.pipeline.generate import generate_txt2img
from tests.pipeline.test_sampling_run import model  # noqa: F401  (module-scoped tiny model fixture)

NOW = dt.datetime(2026, 11, 22, 10, 0, 0)
SMALL = Txt2ImgParams(prompt="a red circle, blue background", negative_prompt="blurry", steps=3,
                      width=16, height=16, seed=1000)


def test_batches_are_saved_with_their_infotext(model, tmp_path: Path) -> None:  # noqa: F811
    params = Txt2ImgParams(**{**SMALL.__dict__, "batch_size": 2, "n_iter": 2})
    results = generate_txt2img(model, params, tmp_path, now=NOW)
    assert [r.seed for r in results] == [1000, 1001, 1002, 1003]
    folder = tmp_path / "txt2img-images" / "2026-11-22"
    assert sorted(p.name for p in folder.iterdir()) == [f"0000{i}-{1000 + i}.png" for i in range(4)]
    for result in results:
        assert read_infotext(result.path) == result.infotext
        fields = parse_infotext(result.infotext)
        assert (fields["Prompt"], fields["Negative prompt"]) == (params.prompt, params.negative_prompt)
        assert fields["Seed"] == str(result.seed) and fields["Size"] == "16x16" and fields["Steps"] == "3"
        assert (fields["Sampler"], fields["Schedule type"], fields["RNG"]) == ("DPM++ 2M", "Karras", "CPU")
        assert fields["Model hash"] == model.checkpoint.shorthash
        assert "Variation seed" not in fields and "Clip skip" not in fields
        assert result.image.size == (16, 16)


def test_same_params_same_pixels_and_batch_equals_single(model) -> None:  # noqa: F811
    batch = generate_txt2img(model, Txt2ImgParams(**{**SMALL.__dict__, "batch_size": 2}), None)
    alone = generate_txt2img(model, Txt2ImgParams(**{**SMALL.__dict__, "seed": 1001}), None)
    again = generate_txt2img(model, Txt2ImgParams(**{**SMALL.__dict__, "seed": 1001}), None)
    assert alone[0].image.tobytes() == again[0].image.tobytes()
    difference = max(abs(a - b) for a, b in zip(batch[1].image.tobytes(), alone[0].image.tobytes()))
    assert difference <= 1  # same noise; batched float kernels may round one level apart


def test_variation_fields_are_written(model) -> None:  # noqa: F811
    params = Txt2ImgParams(**{**SMALL.__dict__, "subseed": 77, "subseed_strength": 0.3, "clip_skip": 2})
    fields = parse_infotext(generate_txt2img(model, params, None)[0].infotext)
    assert (fields["Variation seed"], fields["Variation seed strength"], fields["Clip skip"]) == ("77", "0.3", "2")


def test_interrupt_keeps_finished_images(model) -> None:  # noqa: F811
    job = Job("j", lambda job: None)
    original_report = job.report

    def report(**changes) -> None:
        original_report(**changes)
        if changes.get("image") == 1:
            job.interrupt()  # during the second batch

    job.report = report
    results = generate_txt2img(model, Txt2ImgParams(**{**SMALL.__dict__, "n_iter": 3}), None, job)
    assert [r.seed for r in results] == [1000]


def test_skip_ends_only_the_current_batch(model) -> None:  # noqa: F811
    job = Job("j", lambda job: None)
    job.skip()
    results = generate_txt2img(model, Txt2ImgParams(**{**SMALL.__dict__, "n_iter": 2}), None, job)
    assert [r.seed for r in results] == [1001]


@pytest.mark.parametrize("changes, field", [
    ({"width": 500}, "width"), ({"steps": 0}, "steps"), ({"sampler_name": "Eulr"}, "sampler_name"),
    ({"scheduler": "Karas"}, "scheduler"), ({"cfg_scale": 31}, "cfg_scale"), ({"batch_size": 9}, "batch_size"),
])
def test_validation_names_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ParamsError) as caught:
        Txt2ImgParams(**changes).validate()
    assert caught.value.field == field


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ParamsError) as caught:
        Txt2ImgParams(width=70, height=4000, steps=151).validate()
    assert [name for name, _ in caught.value.problems] == ["width", "height", "steps"]


def test_unknown_sampler_message_lists_the_valid_names() -> None:
    with pytest.raises(ParamsError, match="DPM\\+\\+ 2M.*Euler a.*UniPC"):
        Txt2ImgParams(sampler_name="nope").validate()


def test_live_previews_every_n_steps(model) -> None:  # noqa: F811
    previews = []
    job = Job("j", lambda job: None)
    original_report = job.report

    def report(**changes) -> None:
        original_report(**changes)
        if "preview" in changes:
            previews.append((changes["step"], changes["preview"].size))

    job.report = report
    generate_txt2img(model, Txt2ImgParams(**{**SMALL.__dict__, "steps": 4}), None, job, preview_every=2)
    assert previews == [(2, (8, 8)), (4, (8, 8))]  # latent-sized RGB (the tiny VAE halves the size)
