"""R-TOSS parent-child groups: the depth-first search over the dependency graph, and
children that reuse their parent's kernel patterns."""

import pytest
import torch

from edgeslim.core.errors import EdgeslimError
from edgeslim.core.methods import apply_
from edgeslim.models.cifar_resnet import CifarResNet
from edgeslim.sparsity import RTossConfig, mask_of, rtoss_masks
from edgeslim.sparsity.rtoss_groups import parent_child_groups

# A ResNet-8 (one basic block per stage). The search visits the stem, then block 1's
# conv1 (16 -> 16, parent of conv2, same shape); the stride-2 blocks' conv1 (16 -> 32) and
# conv2 (32 -> 32) and the 1x1 shortcuts differ in shape from everything they feed.
EXPECTED = {
    "conv1": [],
    "layer1.0.conv1": ["layer1.0.conv2"],
    "layer2.0.downsample.0": [],
    "layer2.0.conv1": [],
    "layer2.0.conv2": [],
    "layer3.0.downsample.0": [],
    "layer3.0.conv1": [],
    "layer3.0.conv2": [],
}


def _resnet8() -> CifarResNet:
    torch.manual_seed(0)
    return CifarResNet(1, (16, 32, 64), num_classes=5)


@pytest.fixture(scope="module")
def applied():
    model, rec = apply_(_resnet8(), RTossConfig(entries=2))
    return model, rec


def test_groups_found_by_the_search_on_a_small_resnet(applied):
    _, rec = applied
    groups = {g["parent"]: g["children"] for g in rec.details["parent_child"]}
    assert groups == {p: c for p, c in EXPECTED.items() if c}
    convs = set(EXPECTED) | {c for cs in EXPECTED.values() for c in cs}
    assert set(rec.layers) == convs  # every conv is masked; fc (Linear) is not


def test_children_use_the_parents_patterns(applied):
    model, rec = applied
    mods = dict(model.named_modules())
    for g in rec.details["parent_child"]:
        parent = mask_of(mods[g["parent"]]).mask
        for child in g["children"]:
            assert torch.equal(mask_of(mods[child]).mask, parent)
    # and the child's mask is not the one its own weights would pick
    w = {n: mods[n].parametrizations.weight.original.detach() for n in ("layer1.0.conv2",)}
    own, _ = rtoss_masks(w, RTossConfig(entries=2))
    assert not torch.equal(own["layer1.0.conv2"], mask_of(mods["layer1.0.conv2"]).mask)


def test_every_kernel_keeps_two_adjacent_entries(applied):
    model, _ = applied
    kept = mask_of(dict(model.named_modules())["layer1.0.conv2"]).mask.reshape(-1, 9).sum(1)
    assert torch.all(kept == 2)


def test_off_switch_chooses_patterns_per_layer():
    model, rec = apply_(_resnet8(), RTossConfig(entries=2, parent_child=False))
    assert rec.details["parent_child"] == []
    mods = dict(model.named_modules())
    assert not torch.equal(
        mask_of(mods["layer1.0.conv1"]).mask, mask_of(mods["layer1.0.conv2"]).mask
    )


def test_config_is_recorded_and_defaults_to_the_paper(applied):
    _, rec = applied
    assert rec.config.parent_child is True
    assert rec.to_dict()["config"]["parent_child"] is True


def test_search_is_depth_first_and_one_level_deep():
    succ = {"a": ["b", "c"], "b": ["d"], "c": ["e"], "d": ["e"], "e": []}
    groups = parent_child_groups(succ, dict.fromkeys(succ, 0)).children
    # a claims b and c; d (reached through b first) claims e; children never claim
    assert groups == {"a": ["b", "c"], "d": ["e"]}


def test_a_child_of_another_shape_is_refused():
    w = {"p": torch.randn(4, 4, 3, 3), "c": torch.randn(4, 2, 3, 3)}
    with pytest.raises(EdgeslimError, match="parent's weight shape"):
        rtoss_masks(w, RTossConfig(entries=2), {"c": "p"})


def _fixed_size_net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.Linear(4 * 12 * 12, 2)
    )


def test_groups_trace_on_calib_and_a_wrong_guess_falls_back_with_a_note():
    # 16x16 inputs only: the (1, 4, 32, 32) guess cannot run, the calib batch can
    with pytest.warns(UserWarning, match="no parent-child groups"):
        _, rec = apply_(_fixed_size_net(), RTossConfig(entries=2))
    assert rec.details["parent_child"] == [] and "32, 32" in rec.details["parent_child_note"]
    calib = [torch.randn(2, 4, 16, 16)]
    model, rec = apply_(_fixed_size_net(), RTossConfig(entries=2), calib=calib)
    assert rec.details["parent_child"] == [{"parent": "0", "children": ["2"]}]
    assert torch.equal(mask_of(model[0]).mask, mask_of(model[2]).mask)
    with pytest.raises(EdgeslimError, match="parent_child=False"):  # calib of the wrong shape
        apply_(_fixed_size_net(), RTossConfig(entries=2), calib=[torch.randn(1, 4, 20, 20)])
