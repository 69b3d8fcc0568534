"""An extension written in A1111's style, built on disk, loads through our loader and its module
names, settings and callbacks behave as A1111's."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import pytest

from modules import script_callbacks, scripts, shared
from modules.compat_options import OptionInfo, Options
from modules.extensions import loader

SCRIPT = '''\ufeff
import os
import helper_of_demo_ext  # beside the script's extension root: on sys.path only while loading
from modules import scripts, shared, script_callbacks
from modules.shared import OptionInfo, opts

SEEN = {"basedir": scripts.basedir()}

class Demo(scripts.Script):
    def title(self):
        return "Demo ext"
    def show(self, is_img2img):
        return scripts.AlwaysVisible
    def process(self, p, strength):
        p.extra_generation_params["Demo"] = strength

def on_ui_settings():
    section = ("demo", "Demo")
    shared.opts.add_option("demo_level", OptionInfo(3, "Level", section=section).info("how much").needs_reload_ui())

script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_app_started(lambda demo, app: SEEN.setdefault("app", app))
'''


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture()
def ext_root(tmp_path):
    root = tmp_path / "extensions"
    write(root / "demo-ext" / "scripts" / "demo.py", SCRIPT)
    write(root / "demo-ext" / "helper_of_demo_ext.py", "VALUE = 1\n")
    write(root / "demo-ext" / "metadata.ini", "[Extension]\nName = demo\nAfter = zz-base\n")
    write(root / "demo-ext" / "preload.py", "def preload(parser):\n    parser.add_argument('--demo-flag', default='x')\n")
    write(root / "demo-ext" / "javascript" / "b.js", "")
    write(root / "demo-ext" / "javascript" / "a.js", "")
    write(root / "zz-base" / "scripts" / "nothing.py", "X = 1\n")
    write(root / "broken" / "scripts" / "bad.py", "import no_such_module_anywhere\n")
    write(root / "broken" / "scripts" / "good.py", "Y = 2\n")
    yield root
    script_callbacks.clear_callbacks()
    for name in ("demo", "nothing", "bad", "good"):
        sys.modules.pop(name, None)


def test_metadata_after_moves_an_extension_after_the_one_it_names(ext_root):
    names = [e.name for e in loader.discover(ext_root)]
    assert names.index("zz-base") < names.index("demo-ext")
    assert names[0] == "broken"  # the others stay alphabetical


def test_before_and_a_cycle():
    a = loader.Extension("a", Path("a"), before=("c",))
    b = loader.Extension("b", Path("b"))
    c = loader.Extension("c", Path("c"), before=("a",))  # a cycle with a: alphabetical order kept
    assert [e.name for e in loader.load_order([a, b, c])] == ["b", "a", "c"]
    d = loader.Extension("d", Path("d"), before=("b",))
    assert [e.name for e in loader.load_order([b, d])] == ["d", "b"]


def test_disabled_and_disable_all(ext_root):
    assert {e.name: e.enabled for e in loader.discover(ext_root, ["broken"])} == \
        {"broken": False, "demo-ext": True, "zz-base": True}
    assert not any(e.enabled for e in loader.discover(ext_root, disable_all=True))


def test_requires_a_disabled_extension_disables_it(tmp_path):
    write(tmp_path / "needy" / "metadata.ini", "[Extension]\nRequires = base\n")
    (tmp_path / "base").mkdir()
    found = loader.discover(tmp_path, ["base"])
    loader.check_requirements(found)
    needy = next(e for e in found if e.name == "needy")
    assert not needy.enabled and "base" in needy.errors[0]


def test_scripts_load_with_module_names_basedir_and_a_broken_one_isolated(ext_root, capsys):
    found = loader.discover(ext_root)
    data = scripts.load_extension_scripts(found)
    assert [d.script_class.__name__ for d in data] == ["Demo"]
    assert data[0].module.__name__ == "demo.py"  # the file's name, as A1111 names script modules
    assert data[0].module.SEEN["basedir"] == str(ext_root / "demo-ext")
    assert str(ext_root / "demo-ext") not in sys.path  # only while loading
    broken = next(e for e in found if e.name == "broken")
    assert not broken.enabled and "no_such_module_anywhere" in broken.errors[0]
    assert [m.__name__ for m in broken.modules] == ["good.py"]  # the other file still loaded
    assert "failed to load" in capsys.readouterr().out
    demo = next(e for e in found if e.name == "demo-ext")
    assert [p.name for p in demo.files("javascript", ".js")] == ["a.js", "b.js"]


def test_always_visible_script_changes_the_processing_object(ext_root):
    data = scripts.load_extension_scripts(loader.discover(ext_root))
    script = scripts.instantiate(data[0], is_img2img=False)
    assert script.alwayson and script.name == "demo ext"

    class P:
        extra_generation_params: dict = {}

    p = P()
    p.extra_generation_params = {}
    script.process(p, 0.5)
    assert p.extra_generation_params == {"Demo": 0.5}
    assert script.elem_id("x") == "script_txt2img_demo_ext_x"


def test_settings_callback_adds_an_option_readable_by_attribute(ext_root):
    scripts.load_extension_scripts(loader.discover(ext_root))
    shared.opts = Options()
    try:
        script_callbacks.ui_settings_callback()
        from modules import shared as again
        assert again.opts.demo_level == 3
        info = again.opts.data_labels["demo_level"]
        assert info.reload_required and "how much" in info.comment_after and info.section == ("demo", "Demo")
        again.opts.demo_level = 5
        assert again.opts.data["demo_level"] == 5
    finally:
        shared.opts = Options()


def test_app_started_callback_receives_the_app_and_a_failing_callback_is_isolated(ext_root):
    data = scripts.load_extension_scripts(loader.discover(ext_root))
    script_callbacks.on_app_started(lambda demo, app: 1 / 0)
    results = script_callbacks.app_started_callback(None, "the-app")
    assert data[0].module.SEEN["app"] == "the-app"
    assert len(results) == 1 and "ZeroDivisionError" in script_callbacks.errors[-1]


def test_onchange_runs_and_a_failing_one_keeps_the_old_value():
    opts = Options()
    calls = []
    opts.add_option("a", OptionInfo(1))
    opts.onchange("a", lambda: calls.append(opts.a), call=False)
    opts.a = 2
    assert calls == [2]
    opts.onchange("a", lambda: 1 / 0, call=False)
    with pytest.raises(ZeroDivisionError):
        opts.a = 3
    assert opts.a == 2


def test_preload_adds_a_flag(ext_root):
    demo = next(e for e in loader.discover(ext_root) if e.name == "demo-ext")
    parser = argparse.ArgumentParser()
    loader.run_preload(demo, parser)
    assert parser.parse_args(["--demo-flag", "y"]).demo_flag == "y"


def test_install_py_runs_with_launch_importable_and_a_failure_is_reported(tmp_path):
    ok = tmp_path / "ok"
    write(ok / "install.py", textwrap.dedent("""
        import launch
        print("have torch:", launch.is_installed("torch"))
    """))
    bad = tmp_path / "bad"
    write(bad / "install.py", "raise SystemExit(3)\n")
    said = []
    assert loader.run_install(loader.Extension("ok", ok), report=said.append)
    assert "have torch: True" in said[0]
    extension = loader.Extension("bad", bad)
    assert not loader.run_install(extension, report=said.append)
    assert "exited with 3" in extension.errors[0] and extension.enabled


def test_extension_code_keeps_its_own_annotation_semantics(tmp_path):
    """The loader's own ``from __future__ import annotations`` must not leak into an extension:
    FastAPI reads the annotation of a route defined inside a function (tagcomplete's
    ``body: UseCountListRequest``) as the class itself, not as a string it cannot resolve."""
    script = tmp_path / "annotated.py"
    script.write_text("def make():\n    class Body:\n        pass\n    def route(body: Body):\n        pass\n"
                      "    return Body, route\n\nBODY, ROUTE = make()\n", encoding="utf-8")
    module = loader.import_file(script, "annotated_ext_script", tmp_path)
    assert module.ROUTE.__annotations__["body"] is module.BODY


def test_a_script_class_imported_from_the_extensions_package_is_registered(tmp_path):
    # A1111 registers every Script subclass in a script file's namespace; extensions such as a
    # re-exporting entry point (``from pkg.main import TheScript``) rely on it.
    root = tmp_path / "extensions"
    write(root / "reexport-ext" / "reexport_pkg" / "__init__.py", "")
    write(root / "reexport-ext" / "reexport_pkg" / "main.py", textwrap.dedent('''
        from modules import scripts

        class PackagedScript(scripts.Script):
            def title(self):
                return "Packaged"
            def show(self, is_img2img):
                return scripts.AlwaysVisible
    '''))
    write(root / "reexport-ext" / "scripts" / "entry.py",
          "from reexport_pkg.main import PackagedScript\n\n__all__ = ['PackagedScript']\n")
    try:
        data = scripts.load_extension_scripts(loader.discover(root))
        assert [(d.script_class.__name__, d.module.__name__) for d in data] == [("PackagedScript", "entry.py")]
        assert data[0].basedir == str(root / "reexport-ext")
    finally:
        for name in ("entry", "reexport_pkg", "reexport_pkg.main"):
            sys.modules.pop(name, None)
