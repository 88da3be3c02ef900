"""The default recipe's input model ships with the package and is used without training."""

import torch

from edgeslim.cli.compress import DEFAULT_RECIPE
from edgeslim.models.shipped import shipped_path
from edgeslim.models.zoo import build_zoo_model
from edgeslim.recipe.loader import load_recipe
from edgeslim.workflows import train as train_mod


def _default():
    r = load_recipe(DEFAULT_RECIPE).recipe
    return r, r.pretrain.train_config(r.seed)


def test_the_default_recipe_finds_its_shipped_model():
    r, cfg = _default()
    key = train_mod.pretrained_path(r.model, r.data, cfg).name
    path = shipped_path(key)
    assert path is not None, f"no shipped model for the default recipe's key {key}"
    assert sum(f.stat().st_size for f in path.iterdir()) < 8 * 2**20  # small enough to ship


def test_pretrained_loads_the_shipped_model_instead_of_training(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESLIM_CACHE", str(tmp_path))  # an empty cache

    def no_training(*a, **k):
        raise AssertionError("trained although a shipped model exists")

    monkeypatch.setattr(train_mod, "train_model", no_training)
    r, cfg = _default()
    lm = train_mod.pretrained(r.model, r.data, cfg, progress=False)
    ref = build_zoo_model(r.model, num_classes=lm.model.fc.out_features)
    assert lm.model.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = lm.model.eval()(x)
    assert out.shape == (2, ref.fc.out_features) and torch.isfinite(out).all()


def test_other_configs_do_not_match_the_shipped_model():
    r, cfg = _default()
    from dataclasses import replace

    key = train_mod.pretrained_path(r.model, r.data, replace(cfg, epochs=cfg.epochs + 1)).name
    assert shipped_path(key) is None
