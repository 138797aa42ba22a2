"""One record end to end: physical identities of the whole pipeline."""

import numpy as np
import pytest

from cardiosim.errors import SignalError
from cardiosim.simulate import SimulationConfig, make_context, simulate_record
from cardiosim.sources import CardiacSource, read_wfdb, recording_to_source


@pytest.fixture(scope="module")
def standard_context():
    return make_context("shirt12_500hz", layout="standard12")


@pytest.fixture(scope="module")
def shirt_context():
    return make_context("shirt12_500hz")


def _real_source(data_dir, ctx, name="HR06000"):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = read_wfdb(data_dir / "cinc2021" / name)
    return rec, recording_to_source(rec, ctx.forward, ctx.layout)


@pytest.mark.shared_records("cinc2021/HR06000", "cinc2021/JS20000")
@pytest.mark.parametrize("name", ["HR06000", "JS20000"])
def test_shirt_at_standard_positions_reproduces_the_real_ecg(data_dir, standard_context, name):
    rec, source = _real_source(data_dir, standard_context, name)
    out = simulate_record(source, np.random.default_rng(0), context=standard_context,
                          config=SimulationConfig.noiseless(), device_stage=False)
    expected = rec.signal[[rec.leads.index(k) for k in out.leads]].astype(np.float32)
    err = np.linalg.norm(out.ecg - expected) / np.linalg.norm(expected)
    assert err < 1e-5, f"relative error {err:.2e}"
    assert out.fs == rec.fs


@pytest.mark.shared_records("cinc2021/HR06000")
def test_moved_electrodes_change_what_the_dipole_part_records(data_dir, standard_context, shirt_context):
    rec, source = _real_source(data_dir, standard_context)
    a = simulate_record(source, np.random.default_rng(0), context=standard_context,
                        config=SimulationConfig.noiseless(), device_stage=False)
    b = simulate_record(source, np.random.default_rng(0), context=shirt_context,
                        config=SimulationConfig.noiseless(), device_stage=False)
    rel = np.linalg.norm(a.ecg - b.ecg, axis=1) / np.linalg.norm(a.ecg, axis=1)
    lead = dict(zip(a.leads, rel))
    # The shirt differs from the standard placement in its limb electrodes (Mason-Likar style,
    # PHYSICS.md section 2), so limb leads change; V leads change only through the WCT.
    assert lead["II"] > 0.02 and lead["aVF"] > 0.02
    assert max(lead[f"V{k}"] for k in range(1, 7)) < max(lead["I"], lead["II"], lead["III"]) + 0.5


def test_noise_born_at_electrodes_reaches_leads_through_the_montage(shirt_context):
    from cardiosim.inverse import dipole_from_vcg
    from cardiosim.ode import synthesize

    beats = synthesize(5.0, 500.0, np.random.default_rng(1))
    dipole = dipole_from_vcg(beats.vcg, shirt_context.forward, shirt_context.frank_layout)
    source = CardiacSource(dipole=dipole, fs=500.0, source_id="ode-test")
    cfg = SimulationConfig(motion=False)
    noisy = simulate_record(source, np.random.default_rng(5), context=shirt_context, config=cfg, device_stage=False)
    clean = simulate_record(source, np.random.default_rng(5), context=shirt_context,
                            config=SimulationConfig(motion=False, add_noise=False), device_stage=False)
    noise = noisy.ecg.astype(np.float64) - clean.ecg
    lead = dict(zip(noisy.leads, noise))
    # Einthoven's and Goldberger's laws hold for the noise too: it is born at RA, LA, LL.
    np.testing.assert_allclose(lead["II"], lead["I"] + lead["III"], atol=1e-4)
    np.testing.assert_allclose(lead["aVR"] + lead["aVL"] + lead["aVF"], 0, atol=1e-4)
    assert np.std(lead["I"]) > 1e-3
    # The noise is not common to all leads: each lead sees its own electrodes' noise.
    assert np.corrcoef(lead["I"], lead["V2"])[0, 1] < 0.99


def test_source_with_nan_is_rejected():
    with pytest.raises(SignalError, match="NaN"):
        CardiacSource(dipole=np.full((3, 10), np.nan), fs=500.0, source_id="bad")


def test_rng_must_be_a_generator(shirt_context):
    source = CardiacSource(dipole=np.zeros((3, 100)), fs=500.0, source_id="z")
    with pytest.raises(TypeError, match="Generator"):
        simulate_record(source, 42, context=shirt_context)


def test_chest_breathes_at_the_rate_that_modulates_the_heart(shirt_context):
    source = CardiacSource(dipole=np.zeros((3, 2500)) + 1e-6, fs=500.0, source_id="z", breathing_rate=21.5)
    rec = simulate_record(source, np.random.default_rng(2), context=shirt_context,
                          config=SimulationConfig(add_noise=False), device_stage=False)
    assert rec.params["motion_breathing_rate_bpm"] == pytest.approx(21.5)


def test_classic_augmentations_are_optional_and_applied_after_the_device(shirt_context):
    from cardiosim.simulate import ClassicAugmentConfig

    source = CardiacSource(dipole=1e-5 * np.random.default_rng(0).standard_normal((3, 2500)), fs=500.0,
                           source_id="z")
    plain = simulate_record(source, np.random.default_rng(4), context=shirt_context,
                            config=SimulationConfig(add_noise=False))
    cfg = SimulationConfig(add_noise=False, augment=ClassicAugmentConfig(amplitude_scale=(2.0, 2.0)))
    scaled = simulate_record(source, np.random.default_rng(4), context=shirt_context, config=cfg)
    np.testing.assert_allclose(scaled.ecg, 2.0 * plain.ecg, rtol=1e-6, atol=1e-7)
    assert scaled.params["classic_amplitude_scale_scale"] == 2.0
    assert not any(k.startswith("classic_") for k in plain.params)
    from cardiosim.errors import ConfigError
    with pytest.raises(ConfigError, match="lead_dropout"):
        ClassicAugmentConfig(lead_dropout=1.5)


def test_synthetic_source_reproduces_the_ode_vcg_through_the_frank_network(shirt_context):
    from cardiosim.leads import make_montage
    from cardiosim.ode import synthesize
    from cardiosim.sources import synthetic_source

    src = synthetic_source(4.0, 500.0, np.random.default_rng(9), shirt_context.forward, shirt_context.frank_layout,
                           rhythm="AF", morphology="LBBB", source_id="ode:9")
    beats = synthesize(4.0, 500.0, np.random.default_rng(9), rhythm="AF", morphology="LBBB")
    frank = make_montage("frank")
    lay = shirt_context.frank_layout
    lf = shirt_context.forward.lead_field(lay.positions[[lay.electrodes.index(e) for e in frank.electrodes]])
    vcg = frank.apply(lf @ src.dipole) * 1e3  # V -> mV
    np.testing.assert_allclose(vcg, beats.vcg, atol=1e-9 * np.abs(beats.vcg).max() + 1e-12)
    assert src.labels == ("AF", "LBBB") and src.source_id == "ode:9"
    assert 30 < src.heart_rate < 200 and np.isfinite(src.breathing_rate)


@pytest.mark.shared_records("cinc2021/HR06000")
def test_surface_source_takes_one_closest_point_search_with_the_same_field(data_dir, shirt_context, monkeypatch):
    """A real record's surface source is evaluated along the moving electrodes with
    SurfaceSource.split_transfer (one search for the dipole and the non-dipolar part): the
    same electrode signals, to rounding, as the context's lead field plus nondipolar_transfer."""
    import cardiosim.simulate as sim

    _, source = _real_source(data_dir, shirt_context)
    assert sim._dipole_field_is_the_context_s(source.surface, shirt_context)
    cfg = SimulationConfig(add_noise=False)
    one = simulate_record(source, np.random.default_rng(3), context=shirt_context, config=cfg, device_stage=False)
    monkeypatch.setattr(sim, "_dipole_field_is_the_context_s", lambda surface, ctx: False)
    two = simulate_record(source, np.random.default_rng(3), context=shirt_context, config=cfg, device_stage=False)
    np.testing.assert_allclose(one.ecg, two.ecg, rtol=1e-6, atol=1e-6 * np.abs(two.ecg).max())


def test_dipole_lead_field_read_where_the_walk_left_the_electrodes(shirt_context, monkeypatch):
    """With a BEM torso the lead field along the electrode trajectories is read at the
    surface walk's own (triangle, barycentric) locations instead of a second closest-point
    search: the same record to float32 rounding, noise and device included."""
    import cardiosim.simulate as sim
    from cardiosim.ode.model import default_patient
    from cardiosim.sources import synthetic_source

    ctx = shirt_context
    assert sim._reads_walk_locations(ctx)
    source = synthetic_source(4.0, 500.0, np.random.default_rng(5), ctx.forward, ctx.frank_layout,
                              patient=default_patient(), source_id="walk")
    one = simulate_record(source, np.random.default_rng(11), context=ctx, clean=True)
    monkeypatch.setattr(sim, "_reads_walk_locations", lambda c: False)
    two = simulate_record(source, np.random.default_rng(11), context=ctx, clean=True)
    scale = np.abs(two.clean_ecg).max()
    np.testing.assert_allclose(one.clean_ecg, two.clean_ecg, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(one.ecg, two.ecg, rtol=0, atol=1e-6 * np.abs(two.ecg).max())
    assert one.params.keys() == two.params.keys()
    for k, v in one.params.items():   # realised SNRs and the like: equal to rounding
        if isinstance(v, float):
            assert np.isclose(v, two.params[k], rtol=1e-6, atol=1e-9, equal_nan=True), (k, v, two.params[k])
        else:
            assert v == two.params[k], (k, v, two.params[k])


def test_leads_written_in_place_equal_the_montage_and_noise_calls():
    """simulate's one-pass leads (noisy and clean halves of one buffer) equal
    ``montage.apply(phi)`` and ``montage.apply(en.apply(phi))`` bit for bit, and fall back to
    them when a potential is not finite."""
    from cardiosim.leads import make_montage
    from cardiosim.noise import simulate_electrode_noise
    from cardiosim.simulate import _leads_into, _noisy_leads_into

    mont = make_montage("standard12")
    rng = np.random.default_rng(4)
    phi = rng.standard_normal((9, 2500)) * 0.5
    en = simulate_electrode_noise(9, 2500, 500.0, rng)
    rows = np.empty((24, 2500))
    clean = _leads_into(mont, phi, rows, 12)
    noisy = _noisy_leads_into(mont, en, phi, rows)
    assert clean.base is rows and noisy.base is rows
    np.testing.assert_array_equal(clean.view(np.int64), mont.apply(phi).view(np.int64))
    np.testing.assert_array_equal(noisy.view(np.int64), mont.apply(en.apply(phi)).view(np.int64))
    phi[3, 10] = np.nan
    assert _leads_into(mont, phi, rows, 12).base is not rows
    assert _noisy_leads_into(mont, en, phi, rows).base is not rows


def test_context_montage_is_built_once_and_equals_make_montage():
    from cardiosim.leads import make_montage
    from cardiosim.simulate import _montage

    m = _montage("standard12")
    assert m is _montage("standard12")
    ref = make_montage("standard12")
    assert m.leads == ref.leads and m.electrodes == ref.electrodes
    np.testing.assert_array_equal(m.matrix, ref.matrix)
    assert not m.matrix.flags.writeable


def test_annotations_at_an_unchanged_rate_equal_the_rounded_move():
    """At fs_out == fs the indices are taken as they are: the same as rounding i * 1.0."""
    from types import SimpleNamespace

    from cardiosim.simulate import _annotations_at

    rng = np.random.default_rng(3)
    ann = {k: np.sort(rng.integers(-1, 5200, 17)) for k in ("R_peak", "P_onset", "T_offset")}
    src = SimpleNamespace(annotations=ann, beat_types=("N",) * 17)
    got, _ = _annotations_at(src, None, 500.0, 500.0, 5000)
    for k, idx in ann.items():
        moved = np.where(idx >= 0, np.round(idx * 1.0).astype(np.int64), -1)
        want = np.where(moved < 5000, moved, -1)
        np.testing.assert_array_equal(got[k], want)
        assert got[k].dtype == np.int64


@pytest.mark.parametrize("device_stage", [True, False])
def test_a_record_does_not_share_memory_with_the_next(shirt_context, device_stage):
    """The hot path reuses per-thread scratch buffers record after record; a record returned
    to the caller must not be a view of one, or the next record would overwrite it."""
    from cardiosim.inverse import dipole_from_vcg
    from cardiosim.ode import synthesize

    def record(seed):
        beats = synthesize(4.0, 500.0, np.random.default_rng(seed))
        dipole = dipole_from_vcg(beats.vcg, shirt_context.forward, shirt_context.frank_layout)
        return simulate_record(CardiacSource(dipole=dipole, fs=500.0, source_id=f"ode-{seed}"),
                               np.random.default_rng(seed), context=shirt_context, config=SimulationConfig(),
                               clean=True, device_stage=device_stage)

    first = record(1)
    kept = {k: np.array(getattr(first, k), copy=True) for k in ("ecg", "clean_ecg", "accelerometer", "displacement")
            if getattr(first, k) is not None}
    assert {"ecg", "clean_ecg"} <= set(kept)
    second = record(2)
    for name, before in kept.items():
        np.testing.assert_array_equal(getattr(first, name), before, err_msg=f"{name} changed by the next record")
        assert not np.shares_memory(getattr(first, name), getattr(second, name)), name
