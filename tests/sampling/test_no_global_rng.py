"""Static check: no file under ``modules/`` draws from or seeds a global RNG.

Same parameters must give the same image, so every random draw of the engine
goes through explicit generators (``modules/sampling/noise.py``). The scan
reads the syntax tree, so comments and strings never count, and it follows
import aliases (``import numpy as np``, ``from torch import randn``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MODULES_ROOT = Path(__file__).resolve().parents[2] / "modules"

# Seeding or restoring global generator state is never allowed.
GLOBAL_SEEDING = frozenset(
    {
        "torch.manual_seed",
        "torch.seed",
        "torch.set_rng_state",
        "torch.random.manual_seed",
        "torch.random.seed",
        "torch.random.set_rng_state",
        "torch.cuda.manual_seed",
        "torch.cuda.manual_seed_all",
        "torch.cuda.seed",
        "torch.cuda.seed_all",
        "torch.cuda.set_rng_state",
        "torch.cuda.set_rng_state_all",
        "torch.mps.manual_seed",
        "torch.mps.seed",
    }
)

# torch samplers that use the global generator unless given generator=.
TORCH_DRAWS = frozenset(
    "torch." + name
    for name in (
        "randn",
        "rand",
        "randint",
        "randperm",
        "normal",
        "bernoulli",
        "multinomial",
        "poisson",
        "randn_like",
        "rand_like",
        "randint_like",
    )
)

# In-place samplers: Tensor methods and torch.nn.init functions; both take generator=.
IN_PLACE_DRAWS = frozenset(
    {
        "normal_",
        "uniform_",
        "random_",
        "bernoulli_",
        "exponential_",
        "cauchy_",
        "log_normal_",
        "geometric_",
        "trunc_normal_",
        "kaiming_uniform_",
        "kaiming_normal_",
        "xavier_uniform_",
        "xavier_normal_",
        "orthogonal_",
        "sparse_",
    }
)

# Explicit generator objects of the standard library and numpy are fine.
EXPLICIT_GENERATORS = frozenset(
    {
        "random.Random",
        "random.SystemRandom",
        "numpy.random.default_rng",
        "numpy.random.Generator",
        "numpy.random.RandomState",
        "numpy.random.SeedSequence",
        "numpy.random.BitGenerator",
        "numpy.random.PCG64",
        "numpy.random.PCG64DXSM",
        "numpy.random.Philox",
        "numpy.random.SFC64",
        "numpy.random.MT19937",
    }
)


def import_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> fully qualified name, from every import in the file."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def dotted_name(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, with the root de-aliased."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def has_generator(call: ast.Call) -> bool:
    return any(keyword.arg == "generator" for keyword in call.keywords)


def global_rng_use(call: ast.Call, aliases: dict[str, str]) -> str | None:
    """Why ``call`` uses a global RNG, or None when it does not."""
    name = dotted_name(call.func, aliases)
    if name in GLOBAL_SEEDING:
        return f"{name} seeds a global generator"
    if name in TORCH_DRAWS and not has_generator(call):
        return f"{name} without generator="
    method = call.func.attr if isinstance(call.func, ast.Attribute) else None
    if method in IN_PLACE_DRAWS and not has_generator(call):
        return f"{name or '.' + method} without generator="
    for module in ("random", "numpy.random"):
        if name and name.startswith(module + ".") and name not in EXPLICIT_GENERATORS:
            if name.count(".") == module.count(".") + 1:
                return f"{name} uses the module-level generator"
    return None


def scan_source(source: str, filename: str = "<source>") -> list[str]:
    """``file:line: reason`` for every global RNG use in ``source``."""
    tree = ast.parse(source, filename=filename)
    aliases = import_aliases(tree)
    findings = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            reason = global_rng_use(node, aliases)
            if reason:
                findings.append(f"{filename}:{node.lineno}: {reason}")
    return sorted(findings)


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.manual_seed(1)",
        "import torch\nx = torch.randn(2, 3)",
        "import torch as t\nx = t.rand((2,))",
        "from torch import randn\nx = randn(4)",
        "import torch\nx = torch.randn_like(y)",
        "import torch\ntorch.cuda.manual_seed_all(0)",
        "w.normal_(0, 1)",
        "import torch.nn as nn\nnn.init.kaiming_uniform_(w)",
        "import random\nrandom.random()",
        "from random import choice\nchoice([1, 2])",
        "import numpy as np\nnp.random.rand(3)",
        "from numpy import random as npr\nnpr.seed(0)",
        "import numpy.random\nnumpy.random.normal()",
    ],
)
def test_scanner_flags_global_rng_use(source):
    assert scan_source(source), f"not flagged: {source!r}"


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ng = torch.Generator().manual_seed(1)\nx = torch.randn(2, generator=g)",
        "import torch\nx = torch.randn_like(y, generator=g)",
        "w.normal_(0, 1, generator=g)",
        "import random\nrng = random.Random(3)\nrng.random()",
        "import numpy as np\nrng = np.random.default_rng(0)\nrng.normal()",
        "import torch\n# torch.manual_seed(1) in a comment\nx = 'torch.randn(3)'",
        "import torch\nx = torch.zeros(3)\ntorch.initial_seed",
    ],
)
def test_scanner_accepts_explicit_generators_comments_and_strings(source):
    assert scan_source(source) == []


def test_no_module_uses_a_global_rng():
    files = sorted(MODULES_ROOT.rglob("*.py"))
    assert files, f"no Python files found under {MODULES_ROOT}"
    findings = []
    for path in files:
        relative = path.relative_to(MODULES_ROOT.parent).as_posix()
        findings.extend(scan_source(path.read_text(encoding="utf-8"), relative))
    assert not findings, "global RNG use in modules/:\n" + "\n".join(findings)
