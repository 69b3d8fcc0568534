"""LoRA files on disk (kohya and diffusers/PEFT formats) applied to tiny nets, and through the runtime."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor

from modules.networks.lora import (
    LoraError, LoraLibrary, LoraRequest, describe_lora_file, loras_applied, tag_multipliers,
)
from modules.networks.lora_keys import diffusers_unet_names
from modules.networks.tags import parse_tag
from modules.nets.text_encoders import TextEncoder
from modules.nets.unet import UNetModel
from modules.params import ParamsError, Txt2ImgParams
from modules.pipeline.generate import SaveOptions
from tests.models.family_configs import clip_l_text, tiny_configs
from tests.nets.checkpoints import make_ldm_checkpoint
from tests.nets.parity import Family, diffusers_unet
from tests.test_runtime import make_runtime

UNET_CONFIG, VAE_CONFIG, TEXT_CONFIG = tiny_configs()
RANK = 4


def tiny_model() -> SimpleNamespace:
    torch.manual_seed(0)  # nets built here only; every LoRA tensor below uses its own generator
    return SimpleNamespace(unet=UNetModel(UNET_CONFIG).eval(), text_encoder=TextEncoder(TEXT_CONFIG).eval())


def random(shape: tuple[int, ...], seed: int) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 0.1


def request(path: Path, te: float = 1.0, unet: float = 1.0) -> LoraRequest:
    return LoraRequest(describe_lora_file(path), te, unet, "0" * 12)


def snapshot(model: SimpleNamespace) -> dict[str, Tensor]:
    return {f"{net}.{k}": v.clone() for net in ("unet", "text_encoder")
            for k, v in getattr(model, net).state_dict().items()}


def assert_same(state: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    assert state.keys() == expected.keys()
    assert all(torch.equal(state[k], v) for k, v in expected.items())


# Layers used below, by our (LDM / HF CLIP) attribute path.
TO_Q = "input_blocks.1.1.transformer_blocks.0.attn1.to_q"  # Linear 32 -> 32
RES_CONV = "input_blocks.1.0.in_layers.2"  # Conv2d 32 -> 32, 3x3
PROJ_IN = "input_blocks.1.1.proj_in"  # Conv2d 1x1
MID_CONV = "output_blocks.0.0.out_layers.3"  # Conv2d 64 -> 64, 3x3

def te_layer(path: str) -> str:
    """Our attribute path of a CLIP layer: transformers 4 nests the layers under ``text_model``, 5 does not."""
    nested = hasattr(TextEncoder(TEXT_CONFIG).transformer, "text_model")
    return f"transformer.{'text_model.' if nested else ''}{path}"


TE_Q = te_layer("encoder.layers.0.self_attn.q_proj")  # Linear 32 -> 32


def write_kohya_lora(path: Path, seed: int = 10) -> dict[str, Tensor]:
    state = {
        # diffusers naming, underscored (what kohya's SD1 trainer writes)
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight": random((RANK, 32), seed),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight": random((32, RANK), seed + 1),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha": torch.tensor(2.0),
        # conv LoRA: 3x3 down, 1x1 up
        "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight": random((RANK, 32, 3, 3), seed + 2),
        "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight": random((32, RANK, 1, 1), seed + 3),
        "lora_unet_down_blocks_0_resnets_0_conv1.alpha": torch.tensor(1.0),
        # LDM naming, underscored (older files)
        "lora_unet_input_blocks_1_1_proj_in.lora_down.weight": random((RANK, 32, 1, 1), seed + 4),
        "lora_unet_input_blocks_1_1_proj_in.lora_up.weight": random((32, RANK, 1, 1), seed + 5),
        # LoCon with a Tucker "mid" kernel
        "lora_unet_up_blocks_0_resnets_0_conv2.lora_down.weight": random((RANK, 64, 1, 1), seed + 6),
        "lora_unet_up_blocks_0_resnets_0_conv2.lora_mid.weight": random((RANK, RANK, 3, 3), seed + 7),
        "lora_unet_up_blocks_0_resnets_0_conv2.lora_up.weight": random((64, RANK, 1, 1), seed + 8),
        "lora_unet_up_blocks_0_resnets_0_conv2.alpha": torch.tensor(8.0),
        # SD1 text encoder
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": random((RANK, 32), seed + 9),
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": random((32, RANK), seed + 10),
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha": torch.tensor(4.0),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"ss_output_name": "kohya_alias", "ss_network_dim": str(RANK)})
    return state


def kohya_layer(state: dict[str, Tensor], layer: str) -> tuple[Tensor, Tensor, float]:
    rank = state[f"{layer}.lora_down.weight"].shape[0]
    alpha = state.get(f"{layer}.alpha")
    return state[f"{layer}.lora_up.weight"], state[f"{layer}.lora_down.weight"], (float(alpha) / rank if alpha is not None else 1.0)


def test_diffusers_names_are_the_layers_diffusers_converts_them_to() -> None:
    """Every LDM -> diffusers name we derive holds the same weight in diffusers' own conversion,
    for SD1 and SD2 layouts and for SD1.5's block pattern (two res blocks per level, no
    attention and no downsampler at the last level) at small width."""
    deeper = dataclasses.replace(UNET_CONFIG, channel_mult=(1, 2, 2), num_res_blocks=2, attention_resolutions=(1, 2))
    for sd2, unet_override in ((False, None), (True, None), (False, deeper)):
        unet_config, vae_config, text_config = tiny_configs(sd2=sd2)
        unet_config = unet_override or unet_config
        family = Family(unet_config, vae_config, text_config)
        checkpoint = make_ldm_checkpoint(unet_config, vae_config, text_config, seed=3)
        theirs = diffusers_unet(family, checkpoint)
        ours = UNetModel(unet_config)
        ours.load_state_dict({k.removeprefix("model.diffusion_model."): v for k, v in checkpoint.items()
                              if k.startswith("model.diffusion_model.")})
        names = diffusers_unet_names(ours)
        layers = [n for n, m in ours.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
        assert sorted(names) == sorted(layers)
        for ldm, diffusers in names.items():
            ours_weight = ours.get_submodule(ldm).weight
            their_weight = theirs.get_submodule(diffusers).weight
            assert torch.equal(ours_weight.reshape(their_weight.shape), their_weight), (ldm, diffusers)


def test_kohya_lora_equals_a_manual_merge_and_is_removed_bitwise(tmp_path: Path) -> None:
    state = write_kohya_lora(tmp_path / "k.safetensors")
    model = tiny_model()
    before = snapshot(model)
    w = 0.7
    x_conv = random((1, 32, 8, 8), 99)
    x_mid = random((1, 64, 8, 8), 98)
    res_conv, mid_conv = model.unet.get_submodule(RES_CONV), model.unet.get_submodule(MID_CONV)
    base_res, base_mid = res_conv(x_conv), mid_conv(x_mid)
    with loras_applied(model, [request(tmp_path / "k.safetensors", w, w)]) as fields:
        unet = model.unet
        up, down, scale = kohya_layer(state, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q")
        assert scale == 0.5
        torch.testing.assert_close(unet.get_submodule(TO_Q).weight, before[f"unet.{TO_Q}.weight"] + w * scale * up @ down,
                                   rtol=0, atol=1e-6)
        up, down, scale = kohya_layer(state, "lora_unet_input_blocks_1_1_proj_in")
        expected = before[f"unet.{PROJ_IN}.weight"] + w * scale * (up[:, :, 0, 0] @ down[:, :, 0, 0])[:, :, None, None]
        torch.testing.assert_close(unet.get_submodule(PROJ_IN).weight, expected, rtol=0, atol=1e-6)
        up, down, scale = kohya_layer(state, "lora_te_text_model_encoder_layers_0_self_attn_q_proj")
        torch.testing.assert_close(model.text_encoder.get_submodule(TE_Q).weight,
                                   before[f"text_encoder.{TE_Q}.weight"] + w * scale * up @ down, rtol=0, atol=1e-6)
        # Conv LoRAs checked on the layer's output: the base conv plus the low-rank convs run in sequence.
        up, down, scale = kohya_layer(state, "lora_unet_down_blocks_0_resnets_0_conv1")
        lora_path = F.conv2d(F.conv2d(x_conv, down, padding=1), up)
        torch.testing.assert_close(res_conv(x_conv), base_res + w * scale * lora_path, rtol=0, atol=1e-5)
        prefix = "lora_unet_up_blocks_0_resnets_0_conv2"
        mid = state[f"{prefix}.lora_mid.weight"]
        up, down, scale = kohya_layer(state, prefix)
        lora_path = F.conv2d(F.conv2d(F.conv2d(x_mid, down), mid, padding=1), up)
        torch.testing.assert_close(mid_conv(x_mid), base_mid + w * 2.0 * lora_path, rtol=0, atol=1e-5)
        assert scale == 2.0
        assert fields == {"Lora hashes": "kohya_alias: 000000000000"}
    assert_same(snapshot(model), before)


def write_peft_lora(path: Path, seed: int = 20) -> dict[str, Tensor]:
    state = {
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": random((RANK, 32), seed),
        "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight": random((32, RANK), seed + 1),
        "text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_A.weight": random((RANK, 32), seed + 2),
        "text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_B.weight": random((64, RANK), seed + 3),
        "unet.mid_block.attentions.0.proj_out.lora.down.weight": random((RANK, 64), seed + 4),
        "unet.mid_block.attentions.0.proj_out.lora.up.weight": random((64, RANK), seed + 5),
        "up_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight": random((RANK, 64), seed + 6),
        "up_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight": random((64, RANK), seed + 7),
    }
    save_file(state, str(path))
    return state


def test_diffusers_and_peft_lora_equal_a_manual_merge(tmp_path: Path) -> None:
    state = write_peft_lora(tmp_path / "p.safetensors")
    model = tiny_model()
    before = snapshot(model)
    expected = {  # our layer -> (file prefix, A/B or down/up names)
        "unet.input_blocks.1.1.transformer_blocks.0.attn2.to_k": state["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight"] @ state["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight"],
        f"text_encoder.{te_layer('encoder.layers.1.mlp.fc1')}": state["text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_B.weight"] @ state["text_encoder.text_model.encoder.layers.1.mlp.fc1.lora_A.weight"],
        "unet.middle_block.1.proj_out": (state["unet.mid_block.attentions.0.proj_out.lora.up.weight"] @ state["unet.mid_block.attentions.0.proj_out.lora.down.weight"])[:, :, None, None],
        "unet.output_blocks.0.1.transformer_blocks.0.attn1.to_out.0": state["up_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight"] @ state["up_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight"],
    }
    with loras_applied(model, [request(tmp_path / "p.safetensors", 1.5, 1.5)]):
        now = snapshot(model)
        changed = {k.removesuffix(".weight") for k in before if not torch.equal(before[k], now[k])}
        assert changed == set(expected)
        for layer, delta in expected.items():
            torch.testing.assert_close(now[f"{layer}.weight"], before[f"{layer}.weight"] + 1.5 * delta, rtol=0, atol=1e-6)
    assert_same(snapshot(model), before)


def test_two_loras_stack_as_the_sum_and_multipliers_split_by_part(tmp_path: Path) -> None:
    write_kohya_lora(tmp_path / "a.safetensors", seed=1)
    write_kohya_lora(tmp_path / "b.safetensors", seed=50)
    model = tiny_model()
    base = snapshot(model)

    def deltas(*requests: LoraRequest) -> dict[str, Tensor]:
        with loras_applied(model, requests):
            return {k: v - base[k] for k, v in snapshot(model).items()}

    a, b = deltas(request(tmp_path / "a.safetensors")), deltas(request(tmp_path / "b.safetensors"))
    both = deltas(request(tmp_path / "a.safetensors"), request(tmp_path / "b.safetensors"))
    for key in base:
        torch.testing.assert_close(both[key], a[key] + b[key], rtol=0, atol=1e-6)
    unet_only = deltas(request(tmp_path / "a.safetensors", te=0.0, unet=1.0))
    te_only = deltas(request(tmp_path / "a.safetensors", te=1.0, unet=0.0))
    te_key, unet_key = f"text_encoder.{TE_Q}.weight", f"unet.{TO_Q}.weight"
    assert not unet_only[te_key].any() and torch.equal(unet_only[unet_key], a[unet_key])
    assert not te_only[unet_key].any() and torch.equal(te_only[te_key], a[te_key])


def test_tag_multipliers_follow_a1111() -> None:
    def of(body: str) -> tuple[float, float]:
        return tag_multipliers(parse_tag("lora", body), 0.6)

    assert of("x") == (0.6, 0.6)
    assert of("x:0.5") == (0.5, 0.5)
    assert of("x:0.5:0.2") == (0.5, 0.2)
    assert of("x:te=0.3:unet=0.7") == (0.3, 0.7)
    assert of("x:0.4:unet=0") == (0.4, 0.0)
    with pytest.raises(ValueError, match="'strong' is not a number"):
        of("x:strong")


def test_keys_that_match_no_layer_are_named(tmp_path: Path) -> None:
    save_file({
        "lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight": random((RANK, 32), 1),
        "lora_unet_down_blocks_7_attentions_0_proj_in.lora_up.weight": random((32, RANK), 2),
        "lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a": random((32, RANK), 3),
    }, str(tmp_path / "odd.safetensors"))
    model = tiny_model()
    before = snapshot(model)
    with pytest.raises(LoraError, match=r"odd.safetensors.*hada_w1_a.*down_blocks_7_attentions_0_proj_in"):
        with loras_applied(model, [request(tmp_path / "odd.safetensors")]):
            pass
    save_file({"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight": random((RANK, 48), 1),
               "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight": random((32, RANK), 2)},
              str(tmp_path / "wide.safetensors"))
    with pytest.raises(LoraError, match=r"attn1_to_q makes a \[32, 48\] update for a weight of shape \[32, 32\]"):
        with loras_applied(model, [request(tmp_path / "wide.safetensors")]):
            pass
    assert_same(snapshot(model), before)


def test_library_scans_recursively_reads_pickles_safely_and_lists_names(tmp_path: Path) -> None:
    folder = tmp_path / "Lora"
    write_kohya_lora(folder / "styles" / "ink.safetensors")
    torch.save({"lora_unet_input_blocks_1_1_proj_in.lora_down.weight": random((RANK, 32, 1, 1), 1),
                "lora_unet_input_blocks_1_1_proj_in.lora_up.weight": random((32, RANK, 1, 1), 2)}, folder / "old.pt")
    (folder / "notes.txt").write_text("not a LoRA")
    library = LoraLibrary([folder])
    files = library.files()
    assert [(f.name, f.alias) for f in files] == [("old", "old"), ("ink", "kohya_alias")]
    assert files[1].metadata["ss_network_dim"] == str(RANK)
    assert library.find("kohya_alias").name == "ink"
    model = tiny_model()
    before = model.unet.get_submodule(PROJ_IN).weight.clone()
    with loras_applied(model, [request(files[0].path)]):
        assert not torch.equal(model.unet.get_submodule(PROJ_IN).weight, before)
    write_kohya_lora(folder / "late.safetensors")  # added after the scan: found without a refresh
    assert library.requests_for({"prompt": "<lora:late>"}, 0.5)[0].te_multiplier == 0.5
    with pytest.raises(ParamsError) as raised:
        library.requests_for({"prompt": "a <lora:missing:1>"}, 1.0)
    assert raised.value.field == "prompt"
    assert "unknown LoRA 'missing'; available: ink, kohya_alias, late, old" in raised.value.reason


@pytest.fixture()
def runtime_with_lora(tmp_path: Path):
    folder = tmp_path / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    state = make_ldm_checkpoint(UNET_CONFIG, VAE_CONFIG, clip_l_text(32, 2, 64), seed=4)  # full vocabulary
    save_file(state, str(folder / "tiny.safetensors"))
    lora = tmp_path / "models" / "Lora" / "sub" / "style.safetensors"
    write_kohya_lora(lora)
    return make_runtime(tmp_path), lora


def test_runtime_generation_with_a_lora_records_its_hash_and_leaves_the_model_clean(runtime_with_lora) -> None:
    runtime, lora_path = runtime_with_lora
    assert [(f.name, f.alias, f.path) for f in runtime.loras()] == [("style", "kohya_alias", lora_path)]
    no_save = SaveOptions(images=False, grids=False)

    def generate(prompt: str):
        params = Txt2ImgParams(prompt=prompt, steps=2, width=64, height=64, seed=7, sampler_name="Euler")
        return runtime.submit(params, save=no_save).future.result(timeout=120)[0]

    base = generate("a house")
    model = runtime.acquire_model()
    weights = {k: v.clone() for k, v in model.unet.state_dict().items()}
    off, on = generate("a house <lora:style:0>"), generate("a house <lora:style:0.8>")
    after = generate("a house")
    blob = lora_path.read_bytes()
    header = int.from_bytes(blob[:8], "little")
    expected_hash = hashlib.sha256(blob[8 + header:]).hexdigest()[:12]  # kohya's "addnet" hash, as A1111 records
    assert f'Lora hashes: "kohya_alias: {expected_hash}", Version:' in on.infotext
    assert "<lora:style:0.8>" in on.infotext.splitlines()[0]
    assert "Lora hashes" not in base.infotext
    assert on.image.tobytes() != off.image.tobytes()
    assert after.image.tobytes() == base.image.tobytes()
    assert all(torch.equal(v, weights[k]) for k, v in model.unet.state_dict().items())


def test_an_unknown_lora_is_refused_at_submit(runtime_with_lora) -> None:
    runtime, _ = runtime_with_lora
    with pytest.raises(ParamsError) as raised:
        runtime.submit(Txt2ImgParams(prompt="x", negative_prompt="<lora:nope:1>", steps=1, width=64, height=64))
    assert raised.value.field == "negative_prompt"
    assert "unknown LoRA 'nope'; available: kohya_alias, style" in str(raised.value)
