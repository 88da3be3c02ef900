"""BN recalibration against the statistics computed by hand."""

import pytest
import torch
from torch import nn

from edgeslim.core.errors import EdgeslimError
from edgeslim.prune.recalibrate import recalibrate_bn


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5))


def test_running_stats_become_the_average_batch_statistics():
    net = _net().eval()
    conv, bn = net[0], net[1]
    w = conv.weight.detach().clone()
    xs = [torch.randn(8, 3, 6, 6) * (i + 1) for i in range(3)]
    assert recalibrate_bn(net, [(x, None) for x in xs]) == 3
    ys = [conv(x).detach() for x in xs]
    mean = torch.stack([y.mean((0, 2, 3)) for y in ys]).mean(0)
    var = torch.stack([y.var((0, 2, 3), unbiased=True) for y in ys]).mean(0)
    torch.testing.assert_close(bn.running_mean, mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn.running_var, var, rtol=1e-5, atol=1e-5)
    assert bn.momentum == 0.1 and not net.training and not bn.training
    assert torch.equal(conv.weight, w)  # only BN buffers change


def test_max_batches_and_modes_are_honoured():
    net = _net().train()
    net[3].eval()
    assert recalibrate_bn(net, (torch.randn(4, 3, 6, 6) for _ in range(10)), max_batches=2) == 2
    assert net.training and net[1].training and not net[3].training


def test_no_batches_is_an_error_that_keeps_the_old_statistics():
    net = _net()
    with torch.no_grad():
        net[1].running_mean.fill_(3.0)
    with pytest.raises(EdgeslimError, match="no batches"):
        recalibrate_bn(net, [])
    assert (net[1].running_mean == 3.0).all()


@pytest.mark.slow  # CI time: the verb is covered by a faster test in this file
def test_cli_prune_records_the_recalibrated_stage(tmp_path):
    import json

    from edgeslim.cli.main import main

    out = tmp_path / "r"
    args = ["prune", "resnet20_half", "--ratio", "0.5", "--data", "digits", "--recalibrate-bn"]
    assert main(args + ["--runs", "2", "--batch", "1", "-o", str(out)]) == 0
    stages = json.loads((out / "report.json").read_text())["stages"]
    assert [s["name"] for s in stages] == ["input", "pruned", "pruned + BN recalibrated"]
    assert stages[1]["params"] == stages[2]["params"] and stages[1]["macs"] == stages[2]["macs"]
    assert all(s["accuracy"] is not None for s in stages)


def test_cli_prune_recalibration_needs_data(tmp_path, capsys):
    from edgeslim.cli.main import main

    args = ["prune", "resnet20_half", "--ratio", "0.5", "--recalibrate-bn"]
    assert main(args + ["-o", str(tmp_path / "x")]) == 2
    assert "--recalibrate-bn needs --data" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
