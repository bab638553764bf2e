import sys
import textwrap

import pytest
import torch

from gan_infogan_plugin import LatentCodeSpec, MIRegularizer, QHead, registry
from gan_infogan_plugin.models import GANModel


def test_own_components_and_models_are_registered():
    assert registry.load("components", "LatentCodeSpec") is LatentCodeSpec
    assert registry.load("components", "QHead") is QHead
    assert registry.load("components", "MIRegularizer") is MIRegularizer
    assert registry.load("components", "ContrastiveRegularizer").__name__ == "ContrastiveRegularizer"
    models = registry.load_all("models")
    assert {"mnist", "svhn", "celeba", "chairs", "dcgan64", "dsprites64"} <= set(models)
    assert all(isinstance(m, GANModel) for m in models.values())
    assert registry.entries("models")["mnist"].distribution == "gan-infogan-plugin"


def test_unknown_name_lists_close_matches():
    with pytest.raises(LookupError, match="did you mean mnist"):
        registry.load("models", "mnsit")
    with pytest.raises(ValueError, match="unknown registry kind"):
        registry.entries("widgets")


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """A third-party distribution on a temporary path: one good model, one broken entry point."""
    (tmp_path / "fake_gan_models.py").write_text(
        textwrap.dedent(
            """
            from gan_infogan_plugin.models.paper import mnist
            TINY = mnist
            """
        )
    )
    info = tmp_path / "fake_gan_models-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-gan-models\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[gan_recipes.models]\ntiny = fake_gan_models:TINY\nbroken = fake_gan_models_missing:NOPE\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("fake_gan_models", None)


def test_a_component_from_another_distribution_is_found(fake_dist):
    entry = registry.entries("models")["tiny"]
    assert entry.distribution == "fake-gan-models"
    model = registry.load("models", "tiny")
    g, d = model.build(74)
    assert d(g(torch.randn(2, 74))).shape == (2,)


def test_a_broken_entry_point_warns_and_the_rest_loads(fake_dist):
    with pytest.warns(RuntimeWarning, match="'broken'.*fake-gan-models"):
        models = registry.load_all("models")
    assert "tiny" in models and "mnist" in models and "broken" not in models
