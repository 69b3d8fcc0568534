"""Settings persist atomically, validate their values, and keep foreign keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modules.options import Options, OptionsError, OptionsStore


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert OptionsStore(tmp_path / "config.json").current == Options()


def test_update_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    OptionsStore(path).update({"sd_checkpoints_limit": 3, "CLIP_stop_at_last_layers": 2})
    reloaded = OptionsStore(path).current
    assert (reloaded.sd_checkpoints_limit, reloaded.CLIP_stop_at_last_layers) == (3, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temp file left behind


def test_foreign_keys_survive_a_save(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"some_extension_option": [1, 2], "sd_vae": "None"}))
    store = OptionsStore(path)
    assert store.current.sd_vae == "None"
    store.update({"sd_vae": "Automatic"})
    assert json.loads(path.read_text())["some_extension_option"] == [1, 2]


@pytest.mark.parametrize(
    "changes, field, reason",
    [
        ({"sd_checkpoints_limit": 0}, "sd_checkpoints_limit", "between 1 and 16"),
        ({"CLIP_stop_at_last_layers": "2"}, "CLIP_stop_at_last_layers", "expected int"),
        ({"CLIP_stop_at_last_layers": True}, "CLIP_stop_at_last_layers", "expected int"),
        ({"no_such_option": 1}, "no_such_option", "unknown option"),
        ({"uni_pc_variant": "bh3"}, "uni_pc_variant", "must be one of bh1, bh2, vary_coeff"),
        ({"uni_pc_skip_type": "karras"}, "uni_pc_skip_type", "must be one of time_uniform, time_quadratic, logSNR"),
        ({"uni_pc_order": 0}, "uni_pc_order", "between 1 and 50"),
        ({"uni_pc_order": 51}, "uni_pc_order", "between 1 and 50"),
        ({"uni_pc_order": 2.5}, "uni_pc_order", "expected int"),
        ({"uni_pc_lower_order_final": "false"}, "uni_pc_lower_order_final", "expected bool"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_saved(tmp_path: Path, changes: dict, field: str, reason: str) -> None:
    path = tmp_path / "config.json"
    store = OptionsStore(path)
    with pytest.raises(OptionsError) as caught:
        store.update(changes)
    assert caught.value.field == field and reason in caught.value.reason
    assert not path.exists() and store.current == Options()


def test_a_corrupt_file_is_set_aside_and_the_defaults_used(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    store = OptionsStore(path)
    assert store.current == Options() and not path.exists()
    assert store.set_aside_to is not None and store.set_aside_to.read_text() == "{not json"


def test_unipc_settings_have_a1111s_defaults_and_persist(tmp_path: Path) -> None:
    defaults = Options()
    assert (defaults.uni_pc_variant, defaults.uni_pc_skip_type, defaults.uni_pc_order,
            defaults.uni_pc_lower_order_final) == ("bh1", "time_uniform", 3, True)
    path = tmp_path / "config.json"
    OptionsStore(path).update({"uni_pc_variant": "vary_coeff", "uni_pc_skip_type": "logSNR", "uni_pc_order": 2,
                               "uni_pc_lower_order_final": False})
    saved = json.loads(path.read_text())
    assert (saved["uni_pc_variant"], saved["uni_pc_skip_type"], saved["uni_pc_order"],
            saved["uni_pc_lower_order_final"]) == ("vary_coeff", "logSNR", 2, False)
    assert OptionsStore(path).current.uni_pc_skip_type == "logSNR"
