"""The README's "InfoGAN in your own loop" blocks run as they stand."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_wrap_example_runs(capsys):
    text = README.read_text()
    block = re.search(r"<!-- example: wrap -->\n```python\n(.*?)```", text, re.S)
    assert block, "README lost its wrap example"
    exec(compile(block.group(1), "README.md:wrap-example", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all("MI bound" in line for line in lines)



def test_readme_contrastive_example_runs(capsys):
    block = re.search(r"<!-- example: contrastive -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README lost its contrastive example"
    exec(compile(block.group(1), "README.md:contrastive-example", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all("H's accuracy" in line for line in lines)
