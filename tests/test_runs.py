"""runs.py: the one atomic write, and finding a run from its folder or a checkpoint inside it."""

from __future__ import annotations

import pytest

from gan_infogan_plugin.errors import UserError
from gan_infogan_plugin.runs import RunDir, atomic_file


def test_atomic_file_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text("old")
    with atomic_file(path) as tmp:
        tmp.write_text("new")
        assert path.read_text() == "old" and tmp.name == ".recipe.toml.tmp"  # nothing visible until the block ends
    assert path.read_text() == "new"
    with pytest.raises(RuntimeError):
        with atomic_file(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["recipe.toml"]


def test_a_run_is_found_from_its_folder_or_its_checkpoint(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(UserError, match="the run's recipe is not at"):
        RunDir.of(run)
    (run / "recipe.toml").write_text("")
    assert RunDir.of(run).checkpoint == run / "checkpoints" / "last.ckpt"
    copy = run / "checkpoints" / "step-2.ckpt"
    copy.write_bytes(b"")
    found = RunDir.of(copy)
    assert found.path == run and found.checkpoint == copy and found.eval_file(2) == run / "eval" / "step-0000002.json"
    with pytest.raises(UserError, match="no such run folder"):
        RunDir.of(tmp_path / "absent")
