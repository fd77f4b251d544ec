"""The README's Python tour runs as written (its blocks, in order, in a scratch directory)."""

import os
import re

import compiled  # noqa: F401  (a private kernel cache for the tests)

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    with open(README, encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile("\n".join(blocks), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert set(namespace["step"](**namespace["arrays"])) == {"loss", "grad_w1", "grad_w2"}
    assert (tmp_path / "two_layer.json").exists() and (tmp_path / "two_layer.dot").exists()
