"""The package's promises about itself: layout, import boundaries, hook tests and docs."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from campusguard.sdk import hookspecs

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
HOOKS = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("campusguard_")]


def package_folders() -> dict[str, Path]:
    """Every folder with an ``__init__.py`` under a mapped top-level folder, by its dotted name."""
    found = {}
    for dotted, folder in PACKAGE_DIRS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found[".".join([dotted, *relative.parts])] = init.parent
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert set(package_folders()) == listed


def test_every_package_is_typed() -> None:
    missing = [name for name, folder in package_folders().items() if not (folder / "py.typed").exists()]
    assert missing == []


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("sdk", "campusguard.core"),
        ("plugins", "campusguard.core"),
        ("adapters", "campusguard.core"),
        ("detectors", "campusguard.core"),
    ],
)
def test_import_boundaries(folder: str, forbidden: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in (ROOT / folder).rglob("*.py")
        for module in imports_of(path)
        if module == forbidden or module.startswith(forbidden + ".")
    ]
    assert offenders == []


def test_built_in_plugins_reach_campusguard_only_through_the_sdk() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for folder in ("plugins", "adapters", "detectors")
        for path in (ROOT / folder).rglob("*.py")
        for module in imports_of(path)
        if module.startswith("campusguard.") and not module.startswith("campusguard.sdk")
    ]
    assert offenders == []


def test_listing_plugins_imports_no_heavy_library() -> None:
    code = (
        "import sys; from campusguard.core.cli import main; main(['plugins']);"
        "heavy = [m for m in ('httpx', 'aiosqlite', 'numpy', 'cv2', 'av', 'onnxruntime') if m in sys.modules];"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "HEAVY []" in out


# -- hookspecs: each one documented like pytest's, tested, and in docs/hooks.md -------------------


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_is_documented_in_its_docstring(hook: str) -> None:
    function = getattr(hookspecs, hook)
    doc = inspect.getdoc(function) or ""
    for parameter in inspect.signature(function).parameters:
        assert f":param {parameter}:" in doc, f"{hook} does not document {parameter}"
    assert ".. versionadded::" in doc


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_has_an_entry_in_the_docs(hook: str) -> None:
    docs = (ROOT / "docs" / "hooks.md").read_text()
    assert re.search(rf"^#+ `{hook}", docs, re.MULTILINE), f"docs/hooks.md has no section for {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_has_a_test(hook: str) -> None:
    this = Path(__file__).resolve()
    uses = [
        path.name
        for path in (ROOT / "tests").rglob("test_*.py")
        if path.resolve() != this and re.search(rf"def {hook}\(", path.read_text())
    ]
    assert uses, f"no test implements {hook}"


def test_registration_hooks_table_matches_the_specs() -> None:
    assert set(hookspecs.REGISTRATION_HOOKS) | set(hookspecs.LIFECYCLE_HOOKS) == set(HOOKS)


def test_component_reference_is_current() -> None:
    """docs/components.md is generated from the Config models: regenerate it when options change."""
    from campusguard.core.docs import render
    from campusguard.core.plugin_manager import PluginHost

    host = PluginHost()
    host.load_entry_points()
    expected = render(host)
    assert (ROOT / "docs" / "components.md").read_text() == expected, (
        "docs/components.md is stale: run `campusguard plugins --docs > docs/components.md`"
    )
