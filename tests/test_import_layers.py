"""Lower layers never import higher ones (after MNE-Python's test_import_nesting)."""

import ast

import pytest

from conftest import PROJECT_ROOT

# Rank of each top-level module of cardiosim (DESIGN.md module map, lowest first).
RANKS = {
    "_version": 0, "_resources": 0, "_atomic": 0, "_scratch": 0, "_pairwise_kernels": 0, "_pcg64_kernels": 0, "_exp_kernels": 0, "errors": 0, "frames": 0, "units": 0, "leads": 0, "config": 0, "qrs": 0,
    "geometry": 1, "forward": 2, "inverse": 3, "ode": 3, "sources": 4,
    "motion": 5, "noise": 5, "device": 5, "simulate": 6, "dataset": 7,
    "device_fit": 7, "torch": 8, "plot": 8, "evaluate": 8, "sim2real": 9, "recorder_fit": 9, "warmup": 9, "cli": 9, "__main__": 9,
}
# sources.base defines the CardiacSource type every layer passes around; it imports nothing of ours.
SPECIAL = {("sources", "base"): 0}

PACKAGE = PROJECT_ROOT / "cardiosim"


def _module_parts(path):
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts


def _rank(parts):
    if len(parts) >= 2 and tuple(parts[:2]) in SPECIAL:
        return SPECIAL[tuple(parts[:2])]
    return RANKS.get(parts[0])


def _imports(path):
    tree = ast.parse(path.read_text())
    parts = _module_parts(path)
    pkg = list(parts[:-1]) if parts[-1] != "__init__" else list(parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [a.name] for a in node.names] if not node.module else [target]
            elif node.module and node.module.split(".")[0] == "cardiosim":
                names = [node.module.split(".")[1:]]
            else:
                continue
            for t in names:
                if t:
                    yield node.lineno, t
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "cardiosim":
                    yield node.lineno, a.name.split(".")[1:]


FILES = sorted(p for p in PACKAGE.rglob("*.py") if _module_parts(p)[0] not in ("__init__.py",))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_lower_or_equal_layers(path):
    parts = _module_parts(path)
    if parts == ("__init__",):
        return  # the package facade re-exports the public API
    own = _rank(parts)
    assert own is not None, f"{parts[0]} has no layer in RANKS; add it to the module map"
    for lineno, target in _imports(path):
        if not target or target[0] == "__init__":
            continue
        other = _rank(target)
        if other is None:
            continue
        assert other <= own, (f"{path.relative_to(PROJECT_ROOT)}:{lineno} imports cardiosim.{'.'.join(target)} "
                              f"(layer {other}) from layer {own}")


def test_import_cardiosim_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, cardiosim, cardiosim.dataset, cardiosim.simulate; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_errors_raised_are_the_package_s_own():
    """Bad input gets a specific cardiosim error (a ConfigError, SignalError, ... that users can
    catch as CardiosimError, and that still is a ValueError where that fits): no module raises a
    bare ValueError or KeyError (found in four kernel modules' input checks on 2026-12-06)."""
    bare = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(exc, ast.Name) and exc.id in ("ValueError", "KeyError"):
                    bare.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {exc.id}")
    assert not bare, bare
