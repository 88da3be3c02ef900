"""The torchvision repair: only for a torchvision that really fails, never silent.

torchvision is not needed: a fake package on ``PYTHONPATH`` fails to import exactly
as the CUDA-only wheel does on CPU torch (``operator torchvision::nms does not
exist`` unless that op is defined), and has what transformers imports from it.
Each case runs in a subprocess, so the ops it defines never leak into this one.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgeslim.models.tv import is_broken_torchvision

ROOT = Path(__file__).resolve().parents[2]

FAKE_INIT = '''\
"""Fake torchvision {version}."""
import torch
from torchvision import extension  # noqa: F401  (imported before the failure, as in 0.28)

if {broken} and not hasattr(torch.ops.torchvision, "nms"):
    raise RuntimeError("operator torchvision::nms does not exist")
__version__ = "{version}"
models = object()
'''
FAKE_FILES = {
    "extension.py": "def _has_ops():\n    return False\n",
    "io.py": "",
    "transforms/__init__.py": (
        "import enum\n\n\nclass InterpolationMode(enum.Enum):\n"
        + "".join(
            f"    {m} = {m.lower()!r}\n"
            for m in (
                "NEAREST",
                "NEAREST_EXACT",
                "BILINEAR",
                "BICUBIC",
                "BOX",
                "HAMMING",
                "LANCZOS",
            )
        )
    ),
    "transforms/functional.py": "def pil_to_tensor(pic):\n    raise NotImplementedError\n",
    "transforms/v2/__init__.py": "",
    "transforms/v2/functional.py": "",
}
HF_CONFIG = {
    "model_type": "bert",
    "vocab_size": 50,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "num_labels": 2,
}


def _fake_torchvision(root: Path, broken: bool) -> Path:
    """A torchvision package (with dist-info, so transformers sees it installed) in ``root``."""
    pkg = root / "torchvision"
    files = {"__init__.py": FAKE_INIT.format(version="0.28.0", broken=broken), **FAKE_FILES}
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    meta = root / "torchvision-0.28.0.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: torchvision\nVersion: 0.28.0\n")
    return root


def _run(code: str, path: Path) -> dict:
    """Run ``code`` (which sets ``out``) with the fake first on the path; return ``out``."""
    prog = (
        "import json, warnings\nwarnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        + textwrap.indent(textwrap.dedent(code), "    ")
        + "\nout['warnings'] = [f'{w.category.__name__}: {w.message}' for w in caught"
        " if 'Torchvision' in w.category.__name__]\nprint(json.dumps(out))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), str(ROOT)])}
    res = subprocess.run(
        [sys.executable, "-c", prog], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_broken_torchvision_is_recognised_through_wrapping_errors():
    root = RuntimeError("operator torchvision::nms does not exist")
    try:
        try:
            raise root
        except RuntimeError as e:
            raise ModuleNotFoundError("Could not import module 'BertModel'") from e
    except ModuleNotFoundError as wrapped:
        assert is_broken_torchvision(wrapped)
    assert is_broken_torchvision(root)
    assert not is_broken_torchvision(RuntimeError("CUDA out of memory"))
    assert not is_broken_torchvision(ImportError("No module named 'torchvision'"))


def test_absent_torchvision_is_none_and_a_tv_spec_says_what_to_install(monkeypatch):
    from edgeslim.core.errors import EdgeslimError
    from edgeslim.models.tv import build_tv, repair_torchvision

    monkeypatch.setitem(sys.modules, "torchvision", None)  # import fails as if not installed
    assert repair_torchvision() is None
    with pytest.raises(EdgeslimError, match=r"pip install 'edgeslim\[vision\]'"):
        build_tv("resnet18")


def test_broken_torchvision_is_repaired_once_and_says_what_it_defined(tmp_path):
    out = _run(
        """
        import torch
        from edgeslim.models.tv import nms_reference, repair_torchvision
        tv = repair_torchvision()
        again = repair_torchvision()
        boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.0]])
        scores = torch.tensor([0.7, 0.9, 0.8])
        out = {
            "same": tv is again,
            "version": tv.__version__,
            "has_ops": tv.extension._has_ops(),
            "nms": torch.ops.torchvision.nms(boxes, scores, 0.5).tolist(),
            "ref": nms_reference(boxes, scores, 0.5).tolist(),
        }
        """,
        _fake_torchvision(tmp_path, broken=True),
    )
    assert out["same"] and out["version"] == "0.28.0" and out["has_ops"] is True
    assert out["nms"] == out["ref"] == [1, 2]
    (warning,) = out["warnings"]  # once, though repaired twice
    assert warning.startswith("TorchvisionRepairWarning: torchvision 0.28.0 failed to import")
    for defined in ("torchvision::nms", "torchvision::qnms", "_has_ops"):
        assert defined in warning


def test_working_torchvision_is_not_touched(tmp_path):
    out = _run(
        """
        import torch
        from edgeslim.models.tv import build_tv, repair_torchvision
        tv = repair_torchvision()
        out = {"has_ops": tv.extension._has_ops(), "nms": hasattr(torch.ops.torchvision, "nms")}
        """,
        _fake_torchvision(tmp_path, broken=False),
    )
    assert out == {"has_ops": False, "nms": False, "warnings": []}


@pytest.mark.slow  # two fresh interpreters importing transformers (about 60 s on a loaded box)
@pytest.mark.parametrize("broken", [True, False])
def test_hf_model_builds_with_torchvision_installed_and_repairs_only_a_broken_one(tmp_path, broken):
    pytest.importorskip("transformers")
    out = _run(
        f"""
        import torch
        from edgeslim.models.hf import build_hf
        model = build_hf({HF_CONFIG!r})
        out = {{
            "shape": list(model(torch.randint(0, 50, (1, 8))).shape),
            "defined": hasattr(torch.ops.torchvision, "nms"),
        }}
        """,
        _fake_torchvision(tmp_path, broken=broken),
    )
    assert out["shape"] == [1, 2]
    # transformers really imported the fake (else this test proves nothing): a broken one
    # needed the repair, which warned; a working one was left alone
    assert out["defined"] is broken
    assert len(out["warnings"]) == int(broken)
    if broken:
        assert "transformers imports torchvision" in out["warnings"][0]


def test_hf_repairs_only_when_the_build_failed_because_of_torchvision(monkeypatch):
    import edgeslim.models.hf as hf
    import edgeslim.models.tv as tv

    monkeypatch.setattr(hf, "is_transformers_available", lambda: True)
    repairs: list[str] = []
    monkeypatch.setattr(tv, "repair_torchvision", lambda reason="": repairs.append(reason))

    def failing_once(error):
        calls = []

        def build(config):
            calls.append(config)
            if len(calls) == 1:
                raise error
            return "model"

        return build

    broken = ModuleNotFoundError("Could not import module 'BertForSequenceClassification'")
    broken.__cause__ = RuntimeError("operator torchvision::nms does not exist")
    monkeypatch.setattr(hf, "_build", failing_once(broken))
    assert hf.build_hf({}) == "model" and len(repairs) == 1
    assert "transformers imports torchvision" in repairs[0]

    monkeypatch.setattr(hf, "_build", failing_once(RuntimeError("some other failure")))
    with pytest.raises(RuntimeError, match="some other failure"):
        hf.build_hf({})
    monkeypatch.setattr(hf, "_build", lambda config: "model")
    assert hf.build_hf({}) == "model"
    assert len(repairs) == 1  # neither an unrelated failure nor a success repairs anything


def test_hf_model_without_torchvision_defines_nothing():
    pytest.importorskip("transformers")
    if "torchvision" in sys.modules or _installed("torchvision"):
        pytest.skip("torchvision is installed here")
    import warnings

    import edgeslim.models.tv as tv
    from edgeslim.models.hf import build_hf

    with warnings.catch_warnings():
        warnings.simplefilter("error", tv.TorchvisionRepairWarning)
        build_hf(HF_CONFIG)
    assert tv._LIB is None and "torchvision" not in sys.modules


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
