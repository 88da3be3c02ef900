"""``edgeslim prune --search``: per-group ratios chosen by measured damage, within a MAC target."""

import copy
import json

import pytest
import torch

from edgeslim.bench.macs import count_macs
from edgeslim.cli.main import main
from edgeslim.core.errors import EdgeslimError
from edgeslim.models.inputs import InputSpec
from edgeslim.models.saved import load_saved
from edgeslim.models.zoo import build_zoo_model
from edgeslim.prune.config import PruneConfig
from edgeslim.search.prune_target import search_to_target

SPEC = InputSpec((1, 3, 32, 32))


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return build_zoo_model("resnet20_half", num_classes=4).eval()


def _batches(n=2):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 3, 32, 32, generator=g), torch.arange(16) % 4) for _ in range(n)]


def test_search_meets_the_mac_target_without_touching_the_input(resnet):
    before = copy.deepcopy(resnet.state_dict())
    x = SPEC.example()
    target = count_macs(resnet, x)[0] // 2
    res = search_to_target(
        resnet, SPEC, PruneConfig(target_macs=target), _batches(), progress=False
    )
    assert res.notes["met"] and count_macs(res.model, x)[0] <= target
    assert res.notes["budget"] == {"macs": float(target)}
    widths = [m.out_channels for m in res.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(set(widths)) > 3  # per-group ratios, not one rule for all
    for k, v in resnet.state_dict().items():
        assert torch.equal(v, before[k])
    assert res.model(torch.randn(3, 3, 32, 32)).shape == (3, 4)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (PruneConfig(ratio=0.5), "--target-macs or --target-latency-ms"),
        (PruneConfig(target_macs=10**6, global_ranking=True), "--global"),
    ],
)
def test_search_refuses_what_it_cannot_honour(resnet, cfg, message):
    with pytest.raises(EdgeslimError, match=message):
        search_to_target(resnet, SPEC, cfg, _batches(), progress=False)


@pytest.mark.slow  # CI time: the verb is covered by a faster test in this file
def test_cli_prune_search_writes_the_searched_model_and_its_record(tmp_path):
    out = tmp_path / "s"
    macs = count_macs(build_zoo_model("resnet20_half", num_classes=10), SPEC.example())[0]
    args = ["prune", "resnet20_half", "--target-macs", str(macs * 0.6), "--search"]
    args += ["--data", "digits", "--runs", "2", "--batch", "1", "--round-to", "1", "-o", str(out)]
    assert main(args) == 0
    rep = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in rep["stages"]] == ["input", "pruned (searched ratios)"]
    assert rep["search"]["met"] and rep["stages"][-1]["macs"] <= macs * 0.6
    assert rep["stages"][-1]["accuracy"] is not None
    assert (out / "model.onnx").is_file()
    assert count_macs(load_saved(out).model, SPEC.example())[0] == rep["stages"][-1]["macs"]


def test_cli_prune_search_needs_data(tmp_path, capsys):
    args = ["prune", "resnet20_half", "--target-macs", "1e6", "--search", "-o", str(tmp_path / "x")]
    assert main(args) == 2
    assert "needs --data" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
