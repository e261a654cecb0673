"""What ``pip install s2s-postback`` brings: the plugin's needs only; the sample host's web stack
is the ``sample-host`` extra."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB_STACK = ("starlette", "uvicorn", "jinja2", "python-multipart", "itsdangerous")


def _names(requirements: list[str]) -> set[str]:
    return {
        req.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
        for req in requirements
    }


def test_the_plugin_requires_no_web_stack_and_the_extra_brings_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not _names(project["dependencies"]) & set(WEB_STACK)
    # The extra: the web stack, and what the sample host reads visitors with (User-Agent, GeoIP).
    assert _names(project["optional-dependencies"]["sample-host"]) == {*WEB_STACK, "ua-parser", "maxminddb"}


def test_importing_every_plugin_module_imports_no_web_stack():
    # A fresh interpreter: what the plugin's own modules (CLI included) import, and nothing else.
    code = (
        "import pkgutil, sys, importlib, hookspecs, s2s_plugin\n"
        "for m in pkgutil.walk_packages(s2s_plugin.__path__, 's2s_plugin.'):\n"
        "    if '.migrations' not in m.name and not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        f"print(sorted(n for n in sys.modules if n.split('.')[0] in {('starlette', 'uvicorn', 'jinja2', 'multipart', 'itsdangerous')!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_sample_host_names_its_extra_when_the_web_stack_is_missing():
    # Hide the web stack from a fresh interpreter, then run the sample host's command line.
    code = (
        "import sys\n"
        f"for name in {('starlette', 'uvicorn', 'jinja2', 'multipart', 'itsdangerous')!r}: sys.modules[name] = None\n"
        "import importlib.util\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name in sys.modules and sys.modules[name] is None else real(name, *a)\n"
        "from sample_host.cli import main\n"
        "main(['plugins'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "Error: the sample host needs its web stack (starlette, uvicorn, jinja2, multipart, itsdangerous missing): "
        "pip install 's2s-postback[sample-host]'"
    ]


def test_the_built_wheel_requires_no_web_stack_and_ships_its_data(tmp_path):
    # What `pip install .` would install: the wheel built from this checkout (in pip's own isolated
    # build environment, as a user's install builds it), its metadata and files.
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("s2s_postback-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    required = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    unconditional = _names([req for req in required if "extra ==" not in req])
    assert not unconditional & set(WEB_STACK)
    assert {"pluggy", "httpx", "httpcore", "sqlalchemy", "alembic", "click"} <= unconditional
    for name in (
        "s2s_plugin/resolution/data/templates.json",
        "s2s_plugin/storage/migrations/env.py",
        "s2s_plugin/storage/migrations/script.py.mako",
        "sample_host/templates/base.html",
    ):
        assert name in names, name
    assert any(n.startswith("s2s_plugin/storage/migrations/versions/0001_") for n in names)
