"""`gan-recipes export`: a generator file from a run's last checkpoint, for runs that never reached their end."""

import shutil

import pytest
import safetensors.torch
import torch
from conftest import assert_user_error, gan_recipes as invoke, run_shapes, tiny_run

from gan_infogan_plugin.export import load_generator
from gan_infogan_plugin.runs import FolderLock


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished 3-step run (generator.safetensors and checkpoints/last.ckpt of step 3)."""
    return tiny_run(tmp_path_factory, 3, "trainer.sample_every=0", "trainer.checkpoint_every=0")


def stopped_copy(run_dir, tmp_path):
    """The run as a crash after its last checkpoint leaves it: everything but generator.safetensors."""
    copy = tmp_path / "stopped"
    shutil.copytree(run_dir, copy)
    (copy / "generator.safetensors").unlink()
    return copy


def test_export_of_the_last_checkpoint_is_the_generator_the_run_wrote(run_dir, tmp_path):
    run = stopped_copy(run_dir, tmp_path)
    result = invoke("export", run)
    assert result.exit_code == 0, result.output
    written = run / "generator-step-0000003.safetensors"
    assert result.output.strip() == f"step 3: {written}"
    ours, the_runs = safetensors.torch.load_file(written), safetensors.torch.load_file(run_dir / "generator.safetensors")
    assert ours.keys() == the_runs.keys()
    for name in ours:  # BatchNorm's statistics recomputed as the end of the run did: the same numbers
        assert torch.equal(ours[name], the_runs[name]), name
    loaded = load_generator(written)
    assert loaded.step == 3 and str(loaded.spec) == str(load_generator(run_dir / "generator.safetensors").spec)


def test_a_stopped_run_is_sampled_once_exported(run_dir, tmp_path):
    run = stopped_copy(run_dir, tmp_path)
    assert_user_error(invoke("sample", run, "--out", tmp_path / "a.png"), str(run), "no generator.safetensors",
                      f"gan-recipes export {run}")
    assert not (tmp_path / "a.png").exists()
    assert invoke("export", run).exit_code == 0
    result = invoke("sample", run / "generator-step-0000003.safetensors", "--out", tmp_path / "a.png", "--n", 4)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a.png").stat().st_size > 0
    result = invoke("sample", run_dir, "--out", tmp_path / "b.png", "--traverse", "c1", "--n", 2)  # a finished run's folder
    assert result.exit_code == 0, result.output


def test_export_keeps_out_of_a_folder_in_use_and_never_overwrites(run_dir, tmp_path):
    run = stopped_copy(run_dir, tmp_path)
    lock = FolderLock.acquire(run, "gan-recipes run")  # as a run still training holds it
    try:
        assert_user_error(invoke("export", run), str(run), "is in use by", "gan-recipes run")
        assert not (run / "generator-step-0000003.safetensors").exists()
        elsewhere = tmp_path / "look" / "g.safetensors"
        result = invoke("export", run, "--out", elsewhere)
        assert result.exit_code == 0, result.output
    finally:
        lock.release()
    before = safetensors.torch.load_file(elsewhere)
    assert_user_error(invoke("export", run, "--out", elsewhere), str(elsewhere), "already exists", "--force")
    assert invoke("export", run, "--out", elsewhere, "--force").exit_code == 0
    after = safetensors.torch.load_file(elsewhere)  # the same checkpoint gives the same weights
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert_user_error(invoke("export", run, "--out", tmp_path / "g.pt"), "--out", "expected a .safetensors file name")
    (tmp_path / "empty").mkdir()
    assert_user_error(invoke("export", tmp_path / "empty"), "not a run folder with a checkpoint")


def test_a_plain_gan_run_exports_its_generator(tmp_path):
    run = tmp_path / "gan"
    result = run_shapes(run, 2, "regularizer.enabled=false", "trainer.sample_every=0")
    assert result.exit_code == 0, result.output
    (run / "generator.safetensors").unlink()
    result = invoke("export", run, "--out", tmp_path / "g.safetensors")
    assert result.exit_code == 0, result.output
    assert load_generator(tmp_path / "g.safetensors").generate(2).shape == (2, 1, 28, 28)
