"""The built wheel (not the editable install) carries the recipes and the explore page: `gan-recipes list` finds them."""

from __future__ import annotations

import os
import site
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


def _run(*cmd, **kwargs) -> subprocess.CompletedProcess:
    """Run a child process; on failure the assertion shows its exit status, stdout and stderr."""
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def test_installed_wheel_lists_its_recipes(wheel, tmp_path):
    # A bare venv that sees this interpreter's own site-packages (torch and the other dependencies, in a
    # venv or not) through a .pth file, but not their .pth files: the editable install of this checkout
    # stays invisible, so the package imported below is the wheel's.
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    child_site = _run(python, "-c", "import site; print(site.getsitepackages()[0])").stdout.strip()
    (Path(child_site) / "outer-site-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # This interpreter's pip, run by the venv's python, installs into the venv.
    _run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", wheel)
    env = {**os.environ, "COLUMNS": "200"}
    where = _run(python, "-c", "import gan_infogan_plugin.recipe_files as r; print(r.__file__)", cwd=tmp_path, env=env).stdout
    assert str(venv) in where  # the wheel's copy, not the editable checkout
    page = _run(python, "-c", "from gan_infogan_plugin.explore import _static_files; print(sorted(_static_files()))",
                cwd=tmp_path, env=env).stdout
    assert "'app.js', 'favicon.svg', 'index.html', 'style.css'" in page  # explore's page, read from the installed package
    listed = _run(venv / "bin" / "gan-recipes", "list", cwd=tmp_path, env=env)
    for name in ("infogan-shapes", "infogan-mnist", "dcgan-mnist", "infogan-svhn"):
        assert name in listed.stdout
