"""Meta-tests: every hook is documented with its exact signature and has a test; the tutorial works.

Like datasette's and llm's: the hook reference cannot drift from ``hookspecs``, and a hook cannot be
added without a test that exercises it.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import hookspecs
import hookspecs.specs

ROOT = Path(__file__).resolve().parents[2]
HOOKS_MD = ROOT / "docs" / "hooks.md"
TUTORIAL_MD = ROOT / "docs" / "writing-a-plugin.md"

SPECS = {
    name: getattr(hookspecs.specs, name)
    for name in dir(hookspecs.specs)
    if hasattr(getattr(hookspecs.specs, name), f"{hookspecs.PROJECT_NAME}_spec")
}


def documented_sections() -> dict[str, tuple[list[str], str]]:
    """``{hook: (parameter names in the heading, section text)}`` from docs/hooks.md."""
    text = HOOKS_MD.read_text("utf-8")
    headings = list(re.finditer(r"^## `(\w+)\(([^)]*)\)`$", text, re.M))
    sections = {}
    for heading, following in zip(headings, headings[1:] + [None]):
        body = text[heading.end() : following.start() if following else len(text)]
        params = [p.strip() for p in heading.group(2).split(",") if p.strip()]
        sections[heading.group(1)] = (params, body)
    return sections


def test_the_contract_has_the_hooks_of_the_design() -> None:
    assert set(SPECS) == {
        "on_click",
        "on_conversion",
        "on_postback_sent",
        "register_source_templates",
        "resolve_macro",
        "prepare_request",
        "classify_response",
        "postback_rules",
    }
    assert set(SPECS) <= set(hookspecs.__all__)


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    sections = documented_sections()
    assert sorted(sections) == sorted(SPECS), "docs/hooks.md needs one '## `hook(args)`' section per hook, no more"
    for name, spec in SPECS.items():
        assert sections[name][0] == list(inspect.signature(spec).parameters), f"docs/hooks.md heading of {name}"


def test_every_hook_section_says_when_it_is_called_its_kind_and_shows_an_example() -> None:
    for name, (_params, body) in documented_sections().items():
        assert "**Called by**" in body, name
        assert "```python" in body and "@hookspecs.hookimpl" in body, name
        firstresult = getattr(SPECS[name], f"{hookspecs.PROJECT_NAME}_spec")["firstresult"]
        assert ("`firstresult`" in body) == firstresult, f"{name}: the docs must say firstresult exactly when it is"


def test_every_hook_has_a_docstring_with_its_parameters() -> None:
    for name, spec in SPECS.items():
        doc = inspect.getdoc(spec) or ""
        assert doc.startswith("Called "), name
        for param in inspect.signature(spec).parameters:
            assert f":param {param}:" in doc, f"{name} docstring lacks :param {param}:"
        assert ":return:" in doc and ".. versionadded::" in doc, name


def _test_modules() -> list[Path]:
    return sorted((ROOT / "tests").rglob("test_*.py")) + sorted(ROOT.glob("examples/*/tests/test_*.py"))


def _hookimpl_names(tree: ast.AST) -> set[str]:
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and any("hookimpl" in ast.unparse(d) for d in node.decorator_list)
    }


def test_every_hook_has_a_test() -> None:
    """A test named ``test_<hook>...`` that calls the hook or sits beside an implementation of it."""
    tested: dict[str, list[str]] = {name: [] for name in SPECS}
    for path in _test_modules():
        source = path.read_text("utf-8")
        tree = ast.parse(source)
        impls = _hookimpl_names(tree)
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            for hook in SPECS:
                if node.name.startswith(f"test_{hook}") and (hook in impls or f"hook.{hook}(" in ast.unparse(node)):
                    tested[hook].append(f"{path.relative_to(ROOT)}::{node.name}")
    missing = [hook for hook, tests in tested.items() if not tests]
    assert not missing, f"hooks without a test named test_<hook>_...: {missing}"


def test_the_host_developers_page_points_plugin_authors_to_the_docs() -> None:
    page = (ROOT / "docs" / "hosts.md").read_text("utf-8")
    section = page.split("## Writing a source plugin", 1)[1].split("\n## ", 1)[0]
    assert "(writing-a-plugin.md)" in section and "(hooks.md)" in section


def test_the_readme_is_a_landing_page_and_the_site_home_is_the_same_text() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    assert len(readme.splitlines()) <= 200
    # Every manual page is linked from the README, and exists.
    for page in ("operators", "macros", "hosts", "hooks", "writing-a-plugin", "delivery", "performance", "development"):
        assert f"(docs/{page}.md)" in readme and (ROOT / "docs" / f"{page}.md").is_file()
    home = (ROOT / "docs" / "index.md").read_text("utf-8")
    assert home == readme.replace("](docs/", "](")


# --- the tutorial, followed to the letter -----------------------------------------------------


def tutorial_files() -> dict[str, str]:
    """Every ``<!-- file: PATH -->`` block of docs/writing-a-plugin.md."""
    text = TUTORIAL_MD.read_text("utf-8")
    return {m.group(1): m.group(2) for m in re.finditer(r"<!-- file: (\S+) -->\n```\w*\n(.*?)\n```", text, re.S)}


def test_the_tutorial_builds_a_plugin_that_installs_loads_and_passes_its_own_tests(tmp_path: Path) -> None:
    """Write the tutorial's files into an empty folder, install the package's metadata where
    ``importlib.metadata`` finds it (what ``pip install -e .`` does), run the package's tests."""
    files = tutorial_files()
    assert {"s2s-acme/pyproject.toml", "s2s-acme/s2s_acme/__init__.py", "s2s-acme/tests/test_acme.py"} <= set(files)
    for relative, content in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n", "utf-8")
    project = tomllib.loads(files["s2s-acme/pyproject.toml"])["project"]
    entry_points = project["entry-points"][hookspecs.PROJECT_NAME]
    assert entry_points == {"acme": "s2s_acme"}
    site = tmp_path / "site"
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n", "utf-8"
    )
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{hookspecs.PROJECT_NAME}]\n{lines}", "utf-8")

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(tmp_path / "s2s-acme"), str(ROOT)]),
        "S2S_PLUGINS_STRICT": "1",
    }
    env.pop("S2S_DISABLE_PLUGINS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path / "s2s-acme",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b7 passed\b", result.stdout), result.stdout


@pytest.mark.parametrize("example", ["s2s-exoclick", "s2s-json-events"])
def test_the_examples_are_packaged_like_the_tutorial_says(example: str) -> None:
    project = tomllib.loads((ROOT / "examples" / example / "pyproject.toml").read_text("utf-8"))["project"]
    (module,) = project["entry-points"][hookspecs.PROJECT_NAME].values()
    assert project["name"] == example and (ROOT / "examples" / example / module / "__init__.py").is_file()
    assert any(dep.startswith("s2s-postback") for dep in project["dependencies"])
    source = (ROOT / "examples" / example / module / "__init__.py").read_text("utf-8")
    imports = {n.module or "" for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import) for a in n.names
    }
    assert not any(name.startswith(("s2s_plugin", "sample_host")) for name in imports), "plugins import hookspecs only"
