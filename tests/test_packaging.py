"""The wheel carries the geometry data and an installed package finds it (not the source tree)."""

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(PROJECT_ROOT)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{proc.stderr[-2000:]}")
    wheels = list(out.glob("cardiosim-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_contains_every_geometry_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data_files = [p for p in (PROJECT_ROOT / "geometry").rglob("*") if p.is_file()]
    assert data_files, "geometry/ holds no data files"
    for p in data_files:
        rel = p.relative_to(PROJECT_ROOT / "geometry").as_posix()
        assert f"cardiosim/_geometry/{rel}" in names, rel


def test_installed_package_loads_geometry_from_itself(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    code = ("import cardiosim, cardiosim._resources as r; from cardiosim.geometry import make_torso, make_layout;"
            "t = make_torso(); l = make_layout('shirt12', t);"
            "print(cardiosim.__file__); print(r.geometry_dir()); print(len(l.electrodes))")
    env = {**os.environ, "PYTHONPATH": str(site)}  # the wheel first, before any editable install
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    module_file, data_dir, n = out.stdout.split()
    assert module_file.startswith(str(site))
    assert data_dir.startswith(str(site)) and data_dir.endswith("_geometry")
    assert int(n) >= 9
