"""A residual-mode refiner in generation and ``refine apply`` (issue 18).

A ``mode="residual"`` refiner sees only the non-cardiac part ``ecg - clean_ecg`` of each
record (:class:`cardiosim.torch.refine.Refiner`), so wherever it is applied the records'
clean signal must come with them: generation needs ``[output] store_clean = true`` and
says so before writing anything; a dataset without ``clean_ecg`` is refused. The refined
records are exactly the refiner applied to the unrefined ones with their clean signal, and
the clean signal, labels and beats are the simulation's.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cardiosim.dataset import Recipe, generate, open_dataset  # noqa: E402
from cardiosim.errors import ConfigError  # noqa: E402
from cardiosim.torch.refine import (Refiner, generate_refined, record_r_peaks, refine_dataset,  # noqa: E402
                                    refine_records, save_refiner)

FS = 500.0


def recipe_text(store_clean: bool = True, refine_line: str = "") -> str:
    text = (f"records = 2\nduration = 2.0\nseed = 5\n[output]\npack_int16 = false\n"
            f"store_clean = {'true' if store_clean else 'false'}\n")
    return text + (f"[refine]\n{refine_line}\n" if refine_line else "")


@pytest.fixture(scope="module")
def residual_refiner(tmp_path_factory):
    folder = tmp_path_factory.mktemp("residual")
    torch.manual_seed(0)
    model = Refiner(12, channels=8, blocks=1, mode="residual", keep_average_beat=True)
    torch.nn.init.normal_(model.out.weight, std=0.3)
    model.eval()
    save_refiner(model, folder / "r.pt", settings={"fs": FS, "n_leads": 12})
    return folder, model


def test_generation_refines_only_the_residual(residual_refiner):
    folder, model = residual_refiner
    (folder / "refined.toml").write_text(recipe_text(refine_line='model = "r.pt"'))
    (folder / "plain.toml").write_text(recipe_text())
    generate_refined(folder / "refined.toml", folder / "refined.nc", progress=False)
    generate(Recipe.read(folder / "plain.toml"), folder / "plain.nc", progress=False)
    ref, plain = open_dataset(folder / "refined.nc"), open_dataset(folder / "plain.nc")
    assert np.array_equal(ref["ecg_simulated"].values, plain["ecg"].values)
    expected = refine_records(model, plain["ecg"].values, clean=plain["clean_ecg"].values,
                              r_peaks=record_r_peaks(plain), fs=FS)
    assert np.array_equal(ref["ecg"].values, expected)
    assert np.abs(ref["ecg"].values - plain["ecg"].values).max() > 1e-3        # it did change the records
    for name in ("clean_ecg", "label", "beat_r_peak"):
        assert np.array_equal(ref[name].values, plain[name].values), name
    # refine apply on the stored dataset gives the same records
    out = refine_dataset(folder / "plain.nc", folder / "r.pt", folder / "applied.nc")
    assert np.array_equal(open_dataset(out)["ecg"].values, ref["ecg"].values)
    with pytest.raises(ConfigError, match="clean"):
        refine_records(model, plain["ecg"].values, r_peaks=record_r_peaks(plain), fs=FS)


def test_without_the_clean_signal_it_is_refused_before_anything_is_written(residual_refiner, tmp_path):
    folder, _ = residual_refiner
    (folder / "noclean.toml").write_text(recipe_text(store_clean=False, refine_line='model = "r.pt"'))
    with pytest.raises(ConfigError, match="store_clean"):
        generate_refined(folder / "noclean.toml", tmp_path / "x.nc", progress=False)
    assert not (tmp_path / "x.nc").exists()
    generate(Recipe.from_toml(recipe_text(store_clean=False)), tmp_path / "plain.nc", progress=False)
    with pytest.raises(ConfigError, match="store_clean"):
        refine_dataset(tmp_path / "plain.nc", folder / "r.pt", tmp_path / "y.nc")
    assert not (tmp_path / "y.nc").exists()
