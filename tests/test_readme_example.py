"""The README's examples run as they stand."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(name: str, language: str) -> str:
    block = re.search(rf"<!-- example: {name} -->\n```{language}\n(.*?)```", README.read_text(), re.S)
    assert block, f"README lost its {name} example"
    return block.group(1)


def test_readme_wrap_example_runs(capsys):
    exec(compile(readme_block("wrap", "python"), "README.md:wrap-example", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all("MI bound" in line for line in lines)


def diff_side(diff: str, mark: str) -> str:
    """One side of a unified diff: the context lines and those marked ``mark`` ("-" before, "+" after)."""
    return "".join(line[1:] + "\n" for line in diff.splitlines() if line[:1] in ("", " ", mark))


# The README's sizes, made small enough for a test.
SMALL = {"batch_size = 128": "batch_size = 8", "ngf = ndf = 64": "ngf = ndf = 4", "torch.rand(512,": "torch.rand(16,"}


def run_script(text: str, name: str) -> None:
    for big, small in SMALL.items():
        assert text.count(big) == 1, big
        text = text.replace(big, small)
    exec(compile(text, f"README.md:{name}", "exec"), {"__name__": "__main__"})


def test_readme_fabric_dcgan_diff_runs_on_both_sides(tmp_path, monkeypatch, capsys):
    """Both sides of "Wrapping your DCGAN" run; the InfoGAN side checkpoints Q with D and resumes from it."""
    diff = readme_block("fabric-dcgan", "diff")
    for side in ("before", "after"):
        (tmp_path / side).mkdir()
    monkeypatch.chdir(tmp_path / "before")
    run_script(diff_side(diff, "-"), "dcgan-before")
    assert "2 iterations" in capsys.readouterr().out

    monkeypatch.chdir(tmp_path / "after")
    run_script(diff_side(diff, "+"), "dcgan-after")
    out = capsys.readouterr().out
    assert "2 iterations" in out and "MI bound" in out and "held out" in out
    saved = torch.load("dcgan.ckpt", weights_only=True)["discriminator"]
    assert any(key.startswith("infogan_q.") for key in saved)
    run_script(diff_side(diff, "+"), "dcgan-after-resumed")  # fabric.load restores D with Q, strictly
    assert "4 iterations" in capsys.readouterr().out
