"""Fuzz the label parsers (issue 17): KITTI lines, YOLO lines, COCO entries, GLUE rows.

Each parser gets text (or JSON) that Hypothesis makes up around a valid line and must
either parse it into in-range, inside-the-image rows or raise an :class:`EdgeslimError`
whose one-line message names the file; never another exception, never a silent box
outside the image or a class out of range.
"""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeslim.core import EdgeslimError
from edgeslim.data.coco_format import image_boxes, read_coco
from edgeslim.data.glue import read_tsv
from edgeslim.data.kitti import KITTI_CLASSES
from edgeslim.data.kitti import parse_label_file as parse_kitti
from edgeslim.data.yolo_format import parse_label_file as parse_yolo

FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
W, H, C = 128, 40, 6

NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(str),
    st.integers(-1000, 1000).map(str),
    st.sampled_from(["", "-", "1e999", "nan", "0x10", "1,5", "٣"]),
)
TOKEN = st.one_of(NUMBER, st.sampled_from([*KITTI_CLASSES, "DontCare", "car", "Car\x00"]),
                  st.text(max_size=6))  # fmt: skip


def _rows_ok(rows: np.ndarray, classes: int) -> None:
    assert rows.ndim == 2 and rows.shape[1] == 5 and np.isfinite(rows).all()
    if len(rows):
        assert (rows[:, 0] >= 0).all() and (rows[:, 0] < classes).all()
        assert (rows[:, 1] < rows[:, 3]).all() and (rows[:, 2] < rows[:, 4]).all()
        assert (rows[:, 1:] >= 0).all() and (rows[:, [1, 3]] <= W).all()
        assert (rows[:, [2, 4]] <= H).all()


def _one_line_error(e: EdgeslimError, name: str) -> None:
    assert name in str(e) and "\n" not in str(e), repr(e)


@FAST
@given(st.lists(st.lists(TOKEN, min_size=0, max_size=17), max_size=4))
def test_kitti_lines(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("k") / "000001.txt"
    path.write_text("\n".join(" ".join(t.replace("\n", " ") for t in ln) for ln in lines))
    try:
        rows = parse_kitti(path, W, H)
    except EdgeslimError as e:
        _one_line_error(e, "000001.txt")
        return
    _rows_ok(rows, len(KITTI_CLASSES))


@FAST
@given(st.lists(st.lists(TOKEN, min_size=0, max_size=6), max_size=4))
def test_yolo_lines(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("y") / "img.txt"
    path.write_text("\n".join(" ".join(t.replace("\n", " ") for t in ln) for ln in lines))
    try:
        rows = parse_yolo(path, W, H, C)
    except EdgeslimError as e:
        _one_line_error(e, "img.txt")
        return
    _rows_ok(rows, C)


JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 200), st.floats(width=32),
              st.text(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=3), inner,
                                                                           max_size=4)),
    max_leaves=12,
)  # fmt: skip
BBOX = st.one_of(st.lists(st.one_of(st.integers(-10, 150), st.floats(width=32)), max_size=5),
                 JSONISH)  # fmt: skip


@FAST
@given(
    st.lists(
        st.fixed_dictionaries(
            {"image_id": st.one_of(st.integers(0, 3), JSONISH),
             "category_id": st.one_of(st.sampled_from([3, 7, 9]), JSONISH),
             "bbox": BBOX},
            optional={"iscrowd": st.one_of(st.integers(0, 1), JSONISH)},
        ) | JSONISH,
        max_size=4,
    )
)  # fmt: skip
def test_coco_annotations(tmp_path_factory, anns):
    path = tmp_path_factory.mktemp("c") / "instances.json"
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
        "annotations": anns,
        "categories": [{"id": 3, "name": "car"}, {"id": 7, "name": "x"}],
    }
    try:
        path.write_text(json.dumps(data))
    except ValueError:  # NaN/inf are not JSON: Python writes them anyway, json.loads reads them
        return
    read_coco.cache_clear()
    try:
        d, _, classes = read_coco(str(path))
        rows = image_boxes(path, d, classes)
    except EdgeslimError as e:
        _one_line_error(e, "instances.json")
        return
    _rows_ok(np.asarray(rows[1], np.float32).reshape(-1, 5), 2)


@FAST
@given(st.lists(st.lists(st.text(max_size=8), min_size=0, max_size=5), max_size=5))
def test_glue_rows(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("g") / "train.tsv"
    body = "\n".join("\t".join(c.replace("\n", " ").replace("\t", " ") for c in r) for r in rows)
    path.write_text("sentence\tlabel\n" + body + "\n")
    try:
        fmt, split = read_tsv(path)
    except EdgeslimError as e:
        _one_line_error(e, "train.tsv")
        return
    assert len(split.texts_a) == len(split.labels)
    assert all(0 <= y < len(fmt.labels) for y in split.labels)
