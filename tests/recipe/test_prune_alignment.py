"""The recipe ``prune`` stage aligns kept widths by default (staircase seeded) and says why."""

import pytest

from edgeslim.bench.staircase import (
    WIDTHS,
    Staircase,
    cpu_model,
    network_macs,
    runtime_name,
    save_staircase,
)
from edgeslim.models.spec import load_model
from edgeslim.recipe import STAGES, parse_recipe
from edgeslim.recipe.state import PipelineContext, PipelineState

NET = """
from torch import nn

def make():
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 96, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, 10))
"""


def _seed(block: int, threads: int) -> None:
    macs = [network_macs("conv3x3", w) for w in WIDTHS]
    ms = [1e-6 * m * (-(-w // block) * block / w) ** 2 for w, m in zip(WIDTHS, macs, strict=True)]
    s = Staircase("conv3x3", runtime_name(), cpu_model(), threads, WIDTHS, tuple(ms), tuple(macs))
    save_staircase(Staircase(**{**s.to_dict(), "source": "seeded"}))


@pytest.mark.parametrize(("round_to", "want"), [(None, 48), (1, 64 - int(64 * 0.3))])
def test_recipe_prune_stage_is_aligned_by_default(tmp_path, round_to, want):
    _seed(16, threads=1)
    f = tmp_path / "net.py"
    f.write_text(NET)
    extra = "" if round_to is None else f", round_to: {round_to}"
    loaded = parse_recipe(f"""
version: 1
model: {f}:make
input_shape: [1, 3, 16, 16]
stages:
  - prune: {{ratio: 0.3{extra}}}
measure: {{threads: 1}}
""")
    lm = load_model(f"{f}:make", input_shape=(1, 3, 16, 16))
    ctx = PipelineContext(loaded.recipe, lm, tmp_path / "work", progress=False)
    st = STAGES.get("prune").run(PipelineState(lm), loaded.stages[0].settings, ctx)
    assert st.lm.model[0].out_channels == want
    al = st.notes["alignment"]
    assert al["round_to"] == (16 if round_to is None else 1)
    assert al["source"] == ("measured" if round_to is None else "user")
    if round_to is None:
        assert (
            al["staircases"]["conv3x3"]["source"] == "seeded" and "multiples of 16" in al["reason"]
        )
