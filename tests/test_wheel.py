"""The built wheel (not the editable install) carries the recipes and the explore page: `gan-recipes list` finds them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (path,) = out.glob("gan_infogan_plugin-*.whl")
    return path


def test_wheel_holds_every_package_and_the_recipes(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = {p.name for p in (ROOT / "recipes").glob("*.toml")}
    assert {"infogan-shapes.toml", "infogan-mnist.toml"} <= recipes
    assert {f"gan_infogan_plugin/recipe_files/{r}" for r in recipes} <= names
    packages = {p.parent.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src").rglob("__init__.py")}
    missing = {p for p in packages if f"{p}/__init__.py" not in names}
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    page = {f"gan_infogan_plugin/explore_static/{p.name}" for p in (ROOT / "src/gan_infogan_plugin/explore_static").iterdir()}
    assert "gan_infogan_plugin/explore_static/index.html" in page
    assert page <= names, f"add {page - names} to [tool.setuptools.package-data] in pyproject.toml"


def test_installed_wheel_lists_its_recipes(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # The system pip, run by the venv's python, installs into the venv.
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "COLUMNS": "200"}
    where = subprocess.run([str(python), "-c", "import gan_infogan_plugin.recipe_files as r; print(r.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path, env=env).stdout
    assert str(venv) in where  # the wheel's copy, not the editable checkout
    page = subprocess.run([str(python), "-c", "from gan_infogan_plugin.explore import _static_files; print(sorted(_static_files()))"],
                          capture_output=True, text=True, check=True, cwd=tmp_path, env=env).stdout
    assert "'app.js', 'favicon.svg', 'index.html', 'style.css'" in page  # explore's page, read from the installed package
    listed = subprocess.run([str(venv / "bin" / "gan-recipes"), "list"], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    for name in ("infogan-shapes", "infogan-mnist", "dcgan-mnist", "infogan-svhn"):
        assert name in listed.stdout
