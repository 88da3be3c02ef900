"""The compressed archive of a recipe's final sparse model, beside its dense ONNX file.

The ``sparsify`` stage writes an archive of the model as it leaves that stage; a later
``distill`` or ``finetune`` changes the kept weights (the zeros stay). So a recipe with a
``sparsify`` stage also writes ``weights.esz`` for the last float model (what the
deployed file was made from), with the stage's value coding, and the report puts its
size beside that stage's ONNX file: the ONNX file is dense (ONNX Runtime and OpenVINO
run the zeros like any weight), the archive is where the sparsity buys size. No speed
gain is claimed for it.
"""

from __future__ import annotations

from pathlib import Path

from edgeslim.bench.macs import zero_fraction
from edgeslim.recipe.deploy import is_fake_quantized
from edgeslim.recipe.state import PipelineState
from edgeslim.sparsity.archive import save_archive

FILE = "weights.esz"


def final_archive(history: list[tuple[str, PipelineState]], out_dir: Path) -> dict | None:
    """Write :data:`FILE` into ``out_dir`` and describe it; None without a sparsify stage.

    The model archived is the last float stage's (quantization keeps every zero, and the
    archive stores INT8 values itself); its ONNX file is the dense size compared. The
    ``export`` stage is skipped, as the stage table skips it (its file may carry extra
    outputs, e.g. a post-processed twin).
    """
    sp = next((st.notes["sparsify"] for _, st in history if "sparsify" in st.notes), None)
    if not isinstance(sp, dict):
        return None
    name, state = next(
        ((n, st) for n, st in reversed(history)
         if n != "export" and st.onnx is not None and not is_fake_quantized(st.lm.model)),
        (None, None),
    )  # fmt: skip
    if state is None:
        return None
    values, bits = sp.get("archive_values", "int8"), int(sp.get("archive_bits", 4))
    info = save_archive(state.lm.model, out_dir / FILE, values=values, bits=bits)
    onnx_bytes = Path(state.onnx).stat().st_size
    return {
        "file": FILE,
        "stage": name,
        "method": sp.get("method"),
        "values": values if values != "kmeans" else f"{bits}-bit k-means",
        "bytes": info.size_bytes,
        "onnx_bytes": onnx_bytes,
        "onnx_over_archive": round(onnx_bytes / info.size_bytes, 2),
        "all_weights_sparsity": round(zero_fraction(state.lm.model), 4),
        "speedup_claimed": False,
    }
