"""The SE-ResNet classifier and the fine-tuning helpers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cardiosim.errors import ConfigError
from cardiosim.torch import models as M


@pytest.fixture(autouse=True)
def one_thread():
    # a shared 2-core machine: intra-op threads contend badly (40x slower under load)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_shapes_and_parameter_count():
    model = M.ResNet1dSE(12, 5)
    out = model(torch.randn(4, 12, 1000))
    assert out.shape == (4, 5)
    n = sum(p.numel() for p in model.parameters())
    assert 5e4 < n < 5e5
    assert len(model.stages) == 5


def test_squeeze_excitation_matches_manual_formula():
    torch.manual_seed(0)
    se = M.SqueezeExcitation1d(16, reduction=4)
    x = torch.randn(3, 16, 50)
    s = x.mean(-1)
    g = torch.sigmoid(se.fc2.weight @ torch.relu(se.fc1.weight @ s.T + se.fc1.bias[:, None]) + se.fc2.bias[:, None]).T
    torch.testing.assert_close(se(x), x * g[..., None])


def test_standardize_makes_output_gain_and_offset_invariant():
    torch.manual_seed(1)
    model = M.ResNet1dSE(2, 3).eval()
    x = torch.randn(2, 2, 500)
    torch.testing.assert_close(model(x), model(3.0 * x + 0.7), rtol=1e-4, atol=1e-4)


def test_gradual_unfreezing_freezes_lower_stages_and_their_batchnorm():
    torch.manual_seed(2)
    model = M.ResNet1dSE(1, 2)
    x, y = torch.randn(8, 1, 400), torch.randint(0, 2, (8, 2)).float()
    assert M.gradual_unfreezing(model, epoch=0, every=2) == 1            # head only
    stem_before = [p.detach().clone() for p in model.stem.parameters()]
    bn = model.stem[1]
    mean_before = bn.running_mean.clone()
    head_before = model.head[1].weight.detach().clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    M.train_mode(model)
    loss = M.weighted_bce(model(x), y)
    loss.backward()
    opt.step()
    for a, b in zip(stem_before, model.stem.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(mean_before, bn.running_mean)
    assert not torch.equal(head_before, model.head[1].weight)
    assert M.gradual_unfreezing(model, epoch=5, every=2) == 3
    assert all(p.requires_grad for p in model.layers[-1].parameters())
    assert not any(p.requires_grad for p in model.layers[0].parameters())
    assert M.gradual_unfreezing(model, epoch=100) == len(model.stages)
    with pytest.raises(ConfigError, match="0"):
        M.set_trainable_stages(model, 0)


def test_layerwise_learning_rates():
    model = M.ResNet1dSE(1, 2)
    groups = M.layerwise_param_groups(model, 1e-3, decay=0.5)
    np.testing.assert_allclose([g["lr"] for g in groups], [1e-3 / 16, 1e-3 / 8, 1e-3 / 4, 1e-3 / 2, 1e-3])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_weighted_bce():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    torch.testing.assert_close(M.weighted_bce(logits, target), plain)
    torch.testing.assert_close(M.weighted_bce(logits, target, torch.tensor([1.0, 1.0])), plain)
    only_second = torch.nn.functional.binary_cross_entropy_with_logits(logits[1:], target[1:])
    torch.testing.assert_close(M.weighted_bce(logits, target, torch.tensor([0.0, 2.0])), only_second)


def test_learns_a_toy_rhythm_task():
    # class = whether spikes come at 1 Hz or 2 Hz; chance accuracy is 0.5
    g = torch.Generator().manual_seed(3)
    n, t, fs = 64, 500, 100.0
    rate = torch.randint(0, 2, (n,), generator=g)
    x = 0.2 * torch.randn(n, 1, t, generator=g)
    for i in range(n):
        period = int(fs / (1 + rate[i]))
        start = int(torch.randint(0, period, (1,), generator=g))
        x[i, 0, start::period] += 2.0
    y = torch.nn.functional.one_hot(rate, 2).float()
    torch.manual_seed(0)
    model = M.ResNet1dSE(1, 2, widths=(16, 32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        opt.zero_grad()
        M.weighted_bce(model(x[:48]), y[:48]).backward()
        opt.step()
    model.eval()
    acc = (model(x[48:]).argmax(1) == rate[48:]).float().mean().item()
    assert acc >= 0.85
