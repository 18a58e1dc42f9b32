"""The architecture stays visible: packages own what their docstrings say, nothing reaches into
another package's private names, the store service is only a process, structlog is configured
in one place.

These walk the source (AST), so they fail on the change that breaks the rule, not on a symptom.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "standby"
PACKAGES = ("redolog", "store", "catalog", "snapshot", "schedule", "replay")


def _modules() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def _package(path: Path) -> str:
    return ".".join(("standby", *path.parent.relative_to(ROOT).parts))


def _is_package(name: str) -> bool:
    return (ROOT / Path(*name.split(".")[1:]) / "__init__.py").is_file()


def _is_module(name: str) -> bool:
    """True if `name` (dotted) is a module or package of standby."""
    return _is_package(name) or (ROOT / Path(*name.split(".")[1:])).with_suffix(".py").is_file()


def _owner(module: str) -> str:
    """The package a module's names belong to: itself for a package, else its parent."""
    return module if _is_package(module) else module.rsplit(".", 1)[0]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(path: Path) -> list[str]:
    """Private names of another package used by the module at `path`: `from m import _x`, and
    `alias._x` where `alias` is a module of another package."""
    tree = ast.parse(path.read_text(), str(path))
    here = _package(path)
    aliases: dict[str, str] = {}  # local name -> standby module it names
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("standby"):
                    aliases[a.asname or a.name.split(".")[0]] = a.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("standby"):
            mod = node.module or ""
            for a in node.names:
                full = f"{mod}.{a.name}"
                if _is_module(full):
                    aliases[a.asname or a.name] = full
                    continue
                if _private(a.name) and _owner(mod) != here:
                    found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: "
                                 f"from {mod} import {a.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and _private(node.attr)):
            target = aliases[node.value.id]
            if _owner(target) != here:
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: "
                             f"{node.value.id}.{node.attr} ({target})")
    return found


def test_no_module_uses_another_packages_private_names() -> None:
    found = [f for p in _modules() for f in private_imports(p)]
    assert not found, "private names used across packages:\n" + "\n".join(found)


def test_the_check_catches_both_forms() -> None:
    """The walker itself can fail: a module of another package importing `_x` or using
    `alias._x` is reported (written into the real tree's namespace, then removed)."""
    probe = ROOT / "replay" / "_layout_probe.py"
    probe.write_text("from standby.store.effects import _hidden\n"
                     "from standby.store import effects as fx\n"
                     "x = fx._INDEX_HANDLERS\n"
                     "from standby.replay.engine import _same_package_is_fine\n")
    try:
        found = private_imports(probe)
    finally:
        probe.unlink()
    assert any("import _hidden" in f for f in found), found
    assert any("fx._INDEX_HANDLERS" in f for f in found), found
    assert not any("_same_package_is_fine" in f for f in found), found


@pytest.mark.parametrize("pkg", PACKAGES)
def test_each_package_says_what_it_owns(pkg: str) -> None:
    init = ROOT / pkg / "__init__.py"
    assert init.is_file(), f"standby/{pkg}/ is not a package"
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and len(doc.split()) >= 12, f"standby/{pkg}/__init__.py needs a docstring"


def test_the_store_service_is_only_a_process() -> None:
    """Nothing imports from standby.store.service: its helpers live in the Site."""
    users = []
    for path in [*_modules(), *sorted((ROOT.parent / "tests").glob("*.py"))]:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "standby.store.service":
                users.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "standby.store" and any(
                    a.name == "service" for a in node.names):
                users.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Import) and any(
                    a.name == "standby.store.service" for a in node.names):
                users.append(f"{path.name}:{node.lineno}")
    assert not users, "standby.store.service is imported by " + ", ".join(users)


def test_structlog_is_configured_in_one_place() -> None:
    """Only the CLI's `configure_logging` (and the store service and the index catch-up the
    service starts, each its own process's entry point) call `standby.log.configure`."""
    callers = []
    for path in _modules():
        if path.name == "log.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "configure" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("slog", "log", "structlog")):
                callers.append(str(path.relative_to(ROOT)))
    assert sorted(set(callers)) == ["cli/common.py", "replay/catchup.py",
                                    "store/service.py"], callers
