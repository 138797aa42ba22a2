"""A learned refiner inside generation (``[refine] model``) and the online transform (issue 18).

The reference for every refined record is the refiner applied on its own to the same
simulated record (:func:`cardiosim.torch.refine.refine_records`: one record at a time on
one thread, the bits a record gets whatever its batch; :func:`refine` on a whole batch
agrees to float32 rounding): generation and the transform must give exactly that, and
everything else (the unrefined record, clean record, labels, parameters) must equal an
unrefined run of the same recipe.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cardiosim.dataset import Recipe, generate, open_dataset  # noqa: E402
from cardiosim.errors import ConfigError, DataFormatError, LeadError, SamplingRateError  # noqa: E402
from cardiosim.simulate import make_context  # noqa: E402
from cardiosim.sources import CardiacSource  # noqa: E402
from cardiosim.torch import ShirtTransform  # noqa: E402
from cardiosim.torch.refine import (Refiner, generate_refined, refine, refine_dataset,  # noqa: E402
                                    refine_records, save_refiner)

FS = 500.0


def random_refiner(n_leads: int, seed: int = 0) -> Refiner:
    """A refiner that visibly changes records (an untrained one is the identity)."""
    torch.manual_seed(seed)
    m = Refiner(n_leads, channels=8, blocks=1)
    torch.nn.init.normal_(m.out.weight, std=0.05)
    return m.eval()


@pytest.fixture(scope="module")
def refiner_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refiner")
    model = random_refiner(12)
    save_refiner(model, folder / "r.pt", settings={"fs": FS, "n_leads": 12})
    return folder, model


def recipe_text(refine_line: str = "", **extra) -> str:
    lines = ["records = 3", "duration = 2.0", "seed = 11"] + [f"{k} = {v}" for k, v in extra.items()]
    text = "\n".join(lines) + "\n[output]\npack_int16 = false\nstore_clean = true\n"
    return text + (f"[refine]\n{refine_line}\n" if refine_line else "")


@pytest.fixture(scope="module")
def generated(refiner_file):
    folder, model = refiner_file
    (folder / "refined.toml").write_text(recipe_text('model = "r.pt"'))   # relative to the recipe
    (folder / "plain.toml").write_text(recipe_text())
    summary = generate_refined(folder / "refined.toml", folder / "refined.nc", progress=False)
    generate(Recipe.read(folder / "plain.toml"), folder / "plain.nc", progress=False)
    return folder, model, summary


def test_generated_records_are_the_refiner_applied_to_the_simulation(generated):
    folder, model, summary = generated
    assert summary.n_records == 3
    ref, plain = open_dataset(folder / "refined.nc"), open_dataset(folder / "plain.nc")
    # the unrefined record is the plain run's, bit for bit; the refined one is refine() of it
    assert np.array_equal(ref["ecg_simulated"].values, plain["ecg"].values)
    assert np.array_equal(ref["ecg"].values, refine_records(model, plain["ecg"].values))
    np.testing.assert_allclose(ref["ecg"].values, refine(model, plain["ecg"].values), rtol=0, atol=1e-5)
    assert not np.allclose(ref["ecg"].values, plain["ecg"].values, atol=1e-3)
    # what the heart did and the labels travel unchanged
    for name in ("clean_ecg", "label", "beat_r_peak"):
        assert np.array_equal(ref[name].values, plain[name].values), name
    # the stored recipe pins the refiner: absolute path and SHA-256, as the attrs say
    stored = Recipe.from_toml(ref.attrs["recipe"]).refine
    assert stored.model == str((folder / "r.pt").resolve())
    assert stored.model_sha256 == ref.attrs["refiner_sha256"] and len(stored.model_sha256) == 64
    assert json.loads(ref.attrs["refiner_settings"])["fs"] == FS


def test_int16_packed_shards_are_identical_for_any_worker_count(refiner_file, tmp_path):
    folder, model = refiner_file
    text = recipe_text(f'model = "{folder / "r.pt"}"')
    text = text.replace("pack_int16 = false", "pack_int16 = true\nshard_size = 2")
    recipe = Recipe.from_toml(text)
    one = generate_refined(recipe, tmp_path / "one", progress=False)
    two = generate_refined(recipe, tmp_path / "two", workers=2, progress=False)
    assert one.n_shards == two.n_shards == 2
    for shard in sorted((tmp_path / "one").glob("*.nc")):
        assert shard.read_bytes() == (tmp_path / "two" / shard.name).read_bytes()
    ds = open_dataset(tmp_path / "one")
    # packed on the ecg grid: within half a step of refine() of the stored unrefined record
    step = float(np.abs(np.diff(np.unique(ds["ecg"].values[0, 0]))).min())
    err = np.abs(ds["ecg"].values - refine_records(model, ds["ecg_simulated"].values)).max()
    assert err < 4 * step, (err, step)


def test_refine_dataset_matches_generation(generated, tmp_path):
    folder, model, _ = generated
    out = refine_dataset(folder / "plain.nc", folder / "r.pt", tmp_path / "applied.nc")
    a, b = open_dataset(out), open_dataset(folder / "refined.nc")
    assert np.array_equal(a["ecg"].values, b["ecg"].values)
    assert a.attrs["refiner_sha256"] == b.attrs["refiner_sha256"]
    assert a.attrs["recipe"] == b.attrs["recipe"]     # the stored recipe regenerates the refined dataset
    with pytest.raises(ConfigError, match="refined already"):
        refine_dataset(out, folder / "r.pt", tmp_path / "twice.nc")


def test_generate_without_postprocess_and_bad_refiners_fail_before_writing(refiner_file, tmp_path):
    folder, model = refiner_file
    recipe = Recipe.from_toml(recipe_text(f'model = "{folder / "r.pt"}"'))
    with pytest.raises(ConfigError, match="generate_refined"):
        generate(recipe, tmp_path / "x.nc", progress=False)
    # a refiner trained at another rate
    save_refiner(random_refiner(12), tmp_path / "r250.pt", settings={"fs": 250.0})
    with pytest.raises(SamplingRateError, match="250"):
        generate_refined(recipe.replace(refine=recipe.refine.__class__(model=str(tmp_path / "r250.pt"))),
                         tmp_path / "y.nc", progress=False)
    # a changed refiner file is refused (the recipe pins its hash)
    pinned = recipe.pinned()
    save_refiner(random_refiner(12, seed=1), tmp_path / "moved.pt")
    changed = pinned.replace(refine=pinned.refine.__class__(model=str(tmp_path / "moved.pt"),
                                                            model_sha256=pinned.refine.model_sha256))
    with pytest.raises(ConfigError, match="changed since"):
        generate_refined(changed, tmp_path / "z.nc", progress=False)
    with pytest.raises(DataFormatError, match="not found"):
        generate_refined(recipe.replace(refine=recipe.refine.__class__(model=str(tmp_path / "none.pt"))),
                         tmp_path / "w.nc", progress=False)
    assert not list(tmp_path.glob("*.nc"))


# --------------------------------------------------------------------------- transform
def _source(i: int, n: int = 1000) -> CardiacSource:
    t = np.arange(n) / FS
    p = np.zeros((3, n))
    for c in np.arange(0.2 + 0.01 * i, n / FS - 0.3, 0.7):
        p += np.array([1e-4, 4e-5, -3e-5])[:, None] * np.exp(-0.5 * ((t - c) / 0.012) ** 2)
        p += np.array([2e-5, 1e-5, 0.0])[:, None] * np.exp(-0.5 * ((t - c - 0.3) / 0.05) ** 2)
    return CardiacSource(dipole=p, fs=FS, source_id=f"toy{i}")


@pytest.fixture(scope="module")
def context():
    return make_context()


def test_transform_applies_the_refiner_in_both_modes(context, tmp_path):
    sources = [_source(i) for i in range(3)]
    leads = ["II", "V2", "V5"]
    model = random_refiner(3)
    # batch mode: the same seeds with and without the refiner
    plain = ShirtTransform(1, context=context, mode="batch", leads=leads)
    refined = ShirtTransform(1, context=context, mode="batch", leads=leads, refiner=model)
    seeds = np.array([3, 5, 8], dtype=np.uint64)
    x, y = plain.batch(sources, seeds=seeds), refined.batch(sources, seeds=seeds)
    assert torch.equal(y, torch.from_numpy(refine_records(model, x.numpy())))
    np.testing.assert_allclose(y.numpy(), refine(model, x.numpy()), rtol=0, atol=1e-5)
    assert torch.equal(refined(sources[1], seed=5), y[1])      # a record alone: the same bits
    assert not torch.allclose(x, y, atol=1e-3)
    # full mode: the same numpy generator state with and without
    plain = ShirtTransform(2, context=context, leads=leads)
    save_refiner(model, tmp_path / "m.pt", settings={"fs": FS})
    refined = ShirtTransform(2, context=context, leads=leads, refiner=tmp_path / "m.pt")
    a = plain(sources[0], rng=np.random.default_rng(7))
    b = refined(sources[0], rng=np.random.default_rng(7))
    assert torch.equal(b, torch.from_numpy(refine_records(model, a.numpy()[None])[0]))
    # a path-holding transform pickles without the model and reloads it
    again = pickle.loads(pickle.dumps(refined))
    assert torch.equal(again(sources[0], rng=np.random.default_rng(7)), b)


def test_transform_refuses_refiners_that_do_not_fit(context, tmp_path):
    with pytest.raises(LeadError, match="3 leads"):
        ShirtTransform(1, context=context, leads=["II", "V2"], refiner=random_refiner(3))
    save_refiner(random_refiner(2), tmp_path / "r100.pt", settings={"fs": 100.0})
    with pytest.raises(SamplingRateError, match="100"):
        ShirtTransform(1, context=context, leads=["II", "V2"], refiner=tmp_path / "r100.pt")
    with pytest.raises(ConfigError, match="output='tensor'"):
        ShirtTransform(1, context=context, output="record", refiner=random_refiner(12))


def test_transform_keeps_the_average_beat_for_a_refiner_trained_to(context):
    """A refiner trained with ``keep_average_beat`` is applied by the online transform as
    trained: R peaks found on each record (:func:`cardiosim.qrs.detect_r_peaks`), the
    refinement's beat-locked average removed -- so the record's change has a zero mean
    over those beats, where the same network without the projection changes it."""
    from cardiosim.qrs import detect_r_peaks
    from cardiosim.torch.refine import beat_windows

    sources = [_source(i) for i in range(2)]
    leads = ["II", "V2", "V5"]
    model = random_refiner(3, seed=4)
    model.config["keep_average_beat"] = True
    plain = ShirtTransform(1, context=context, mode="batch", leads=leads)
    refined = ShirtTransform(1, context=context, mode="batch", leads=leads, refiner=model)
    seeds = np.array([2, 9], dtype=np.uint64)
    x, y = plain.batch(sources, seeds=seeds).numpy(), refined.batch(sources, seeds=seeds).numpy()
    peaks = [detect_r_peaks(r.astype(np.float64), FS) for r in x]
    assert np.array_equal(y, refine_records(model, x, r_peaks=peaks, fs=FS))
    model.config["keep_average_beat"] = False
    free = refine_records(model, x)
    for xi, yi, fi, w in zip(x, y, free, beat_windows(peaks, x.shape[-1], FS)):
        assert len(w) >= 1
        kept = np.abs((yi - xi)[:, w].mean(axis=1)).max()
        assert kept < 1e-3 * np.abs((fi - xi)[:, w].mean(axis=1)).max() + 1e-6, kept
        assert np.abs(yi - xi).mean() > 1e-3 * np.abs(xi).mean()
