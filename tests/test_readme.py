"""The README's Python tour runs as written (a real record path substituted)."""

import re

import pytest

from conftest import PROJECT_ROOT


@pytest.mark.shared_records("cinc2021/HR06000")
def test_readme_python_blocks_run(tmp_path, data_dir, monkeypatch):
    text = (PROJECT_ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no Python examples"
    monkeypatch.chdir(tmp_path)
    code = "\n".join(blocks).replace('read_wfdb("HR06000")', f'read_wfdb(r"{data_dir / "cinc2021" / "HR06000"}")')
    code = code.replace('"records": 64', '"records": 4').replace('"duration": 10.0', '"duration": 2.0')
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["ecg"].shape[0] == 12
    assert namespace["record"].ecg.shape == (12, 5000)
    assert namespace["real"].residual is not None
    assert (tmp_path / "shirt_ecg.nc").is_file()
