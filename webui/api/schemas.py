"""Request and response bodies with A1111's field names and defaults (a1111-conventions §5).

Every field is optional; a JSON null means "not given" (the default applies), and unknown
fields are ignored, since clients send fields for features they assume.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modules.numbers import number_problem


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @field_validator("*")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        """No NaN or infinity in any number field (JSON from JavaScript can carry them): the same
        check that settings and parameters use, so a new field cannot let them in."""
        reason = number_problem(value) if isinstance(value, float) else None
        if reason:
            raise ValueError(reason)
        return value

    def given(self) -> dict[str, Any]:
        """The fields the client set to a non-null value."""
        return {name: getattr(self, name) for name in self.model_fields_set if getattr(self, name) is not None}

    def value(self, name: str) -> Any:
        """The field's value, or its default when the client sent null."""
        value = getattr(self, name)
        return type(self).model_fields[name].get_default(call_default_factory=True) if value is None else value


class GenerationRequest(ApiModel):
    """The fields txt2img and img2img share (A1111's ``StableDiffusionProcessing``)."""

    prompt: str | None = ""
    negative_prompt: str | None = ""
    styles: list[str] | None = None
    seed: int | None = -1
    subseed: int | None = -1
    subseed_strength: float | None = 0.0
    seed_resize_from_h: int | None = -1
    seed_resize_from_w: int | None = -1
    sampler_name: str | None = None
    sampler_index: str | None = Field("Euler", description="used when sampler_name is empty")
    scheduler: str | None = None
    batch_size: int | None = 1
    n_iter: int | None = 1
    steps: int | None = 50
    cfg_scale: float | None = 7.0
    width: int | None = 512
    height: int | None = 512
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool | None = False
    do_not_save_grid: bool | None = False
    eta: float | None = None
    denoising_strength: float | None = 0.75
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool | None = True
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = None
    disable_extra_networks: bool | None = False
    firstpass_image: str | None = None
    comments: dict[str, Any] | None = None
    force_task_id: str | None = None
    script_name: str | None = None
    script_args: list[Any] | None = Field(default_factory=list)
    send_images: bool | None = True
    save_images: bool | None = False
    alwayson_scripts: dict[str, Any] | None = Field(default_factory=dict)
    infotext: str | None = None


class Txt2ImgRequest(GenerationRequest):
    enable_hr: bool | None = False
    firstphase_width: int | None = 0
    firstphase_height: int | None = 0
    hr_scale: float | None = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int | None = 0
    hr_resize_x: int | None = 0
    hr_resize_y: int | None = 0
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str | None = ""
    hr_negative_prompt: str | None = ""


class Img2ImgRequest(GenerationRequest):
    init_images: list[str] | None = None
    resize_mode: int | None = 0
    image_cfg_scale: float | None = None
    mask: str | None = None
    mask_blur_x: int | None = 4
    mask_blur_y: int | None = 4
    mask_blur: int | None = None
    mask_round: bool | None = True
    inpainting_fill: int | None = 0
    inpaint_full_res: bool | None = True
    inpaint_full_res_padding: int | None = 0
    inpainting_mask_invert: int | None = 0
    initial_noise_multiplier: float | None = None
    latent_mask: str | None = None
    include_init_images: bool | None = False


class GenerationResponse(BaseModel):
    images: list[str] = Field(description="raw base64 PNGs with the parameters chunk")
    parameters: dict[str, Any]
    info: str = Field(description="a JSON string: all_seeds, infotexts, seed, ...")


class ExtrasRequest(ApiModel):
    """A1111's ``ExtrasBaseRequest``: upscale by a factor (resize_mode 0) or to a size (1)."""

    resize_mode: int | None = 0
    show_extras_results: bool | None = True
    gfpgan_visibility: float | None = 0.0
    codeformer_visibility: float | None = 0.0
    codeformer_weight: float | None = 0.0
    upscaling_resize: float | None = 2.0
    upscaling_resize_w: int | None = 512
    upscaling_resize_h: int | None = 512
    upscaling_crop: bool | None = True
    upscaler_1: str | None = "None"
    upscaler_2: str | None = "None"
    extras_upscaler_2_visibility: float | None = 0.0
    upscale_first: bool | None = False


class ExtrasSingleRequest(ExtrasRequest):
    image: str | None = ""


class NamedImage(BaseModel):
    data: str
    name: str = ""


class ExtrasBatchRequest(ExtrasRequest):
    imageList: list[NamedImage] | None = Field(default_factory=list)


class ExtrasSingleResponse(BaseModel):
    html_info: str
    image: str | None


class ExtrasBatchResponse(BaseModel):
    html_info: str
    images: list[str]


class PngInfoRequest(ApiModel):
    image: str | None = ""


class PngInfoResponse(BaseModel):
    info: str
    items: dict[str, Any]
    parameters: dict[str, Any]
