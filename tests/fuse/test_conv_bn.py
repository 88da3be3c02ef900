"""BN folding: the folded model equals the unfolded one in eval mode."""

import pytest
import torch
from torch import nn

from edgeslim.fuse import conv_bn_pairs, fold_bn, fold_bn_, fold_conv_bn
from edgeslim.models.spec import load_model


def _randomize_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))


@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v2_cifar", "vgg16_bn_cifar"])
def test_fold_equals_unfolded_on_zoo(name):
    lm = load_model(name)
    _randomize_bn(lm.model)
    x = lm.input.example(batch=3)
    ref = lm.model(x)
    folded = fold_bn(lm.model, x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in lm.model.modules())  # caller untouched
    torch.testing.assert_close(folded(x), ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bias", [True, False])
def test_fold_single_pair_with_and_without_bias(bias):
    conv = nn.Conv2d(3, 5, 3, bias=bias)
    bn = nn.BatchNorm2d(5)
    _randomize_bn(nn.Sequential(bn))
    bn.eval()
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(fold_conv_bn(conv, bn)(x), bn(conv(x)), atol=1e-5, rtol=1e-5)


def test_fold_linear_bn1d_and_shared_conv_not_folded():
    m = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).eval()
    _randomize_bn(m)
    x = torch.randn(5, 4)
    ref = m(x)
    assert fold_bn_(m, x) == [("0", "1")]
    torch.testing.assert_close(m(x), ref, atol=1e-5, rtol=1e-5)

    class Branch(nn.Module):  # the conv feeds a BN *and* something else: cannot fold
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    assert conv_bn_pairs(Branch().eval(), torch.randn(1, 3, 4, 4)) == []


class _Attrs(nn.Module):
    """Conv and BN as attributes (not an nn.Sequential), one conv used twice."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.shared, self.bn2 = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        return self.bn2(self.shared(y)) + self.shared(y)


def test_pairs_come_from_the_capture_and_fold_exactly():
    m = _Attrs().eval()
    _randomize_bn(m)
    x = torch.randn(2, 3, 8, 8)
    ref = m(x)
    folded = fold_bn(m, x)
    assert isinstance(folded.bn, nn.Identity)  # found by the capture, not by Sequential order
    assert isinstance(folded.bn2, nn.BatchNorm2d)  # its conv runs twice: not folded
    torch.testing.assert_close(folded(x), ref, atol=1e-5, rtol=1e-5)


def test_without_an_example_only_sequential_neighbours_fold_with_a_warning():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    with pytest.warns(UserWarning, match="no example input"):
        assert fold_bn_(m) == [("0", "1")]
    with pytest.warns(UserWarning, match="no example input"):
        assert conv_bn_pairs(_Attrs().eval()) == []
