"""``glue:DIR``: GLUE-format TSVs written here in the shapes of SST-2, MRPC and RTE;
parsing, labels, the tokenizer round trip, and one clear error per kind of bad input."""

from __future__ import annotations

import pytest

pytest.importorskip("tokenizers")

from edgeslim.core.errors import EdgeslimError  # noqa: E402
from edgeslim.data import dataset_info, load_dataset  # noqa: E402
from edgeslim.data.glue import glue_tokenizer, parse_arg, read_tsv  # noqa: E402
from edgeslim.data.wordpiece import decode  # noqa: E402

SST2 = ["sentence\tlabel", "a gripping , funny film\t1", "dull and far too long\t0",
        "the cast is wonderful\t1", "it never finds its feet\t0"]  # fmt: skip
MRPC = [
    "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String",
    "1\t702876\t702977\tThe company said profits rose .\tProfits rose , the company said .",
    "0\t2108705\t2108831\tShares fell 3 percent .\tThe stock closed higher on Friday .",
    "1\t1330381\t1330521\tHe left on Monday .\tOn Monday he left .",
]
RTE = [
    "index\tsentence1\tsentence2\tlabel",
    "0\tThe cat sat on the mat .\tA cat is on a mat .\tentailment",
    "1\tThe dog is asleep .\tThe dog is running .\tnot_entailment",
    "2\tParis is in France .\tParis is a city in France .\tentailment",
]


def write_task(root, train, dev=None, test=None):
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.tsv").write_text("\n".join(train) + "\n")
    (root / "dev.tsv").write_text("\n".join(dev or train) + "\n")
    if test is not None:
        (root / "test.tsv").write_text("\n".join(test) + "\n")
    return root


@pytest.mark.parametrize(
    ("lines", "name", "labels", "pair"),
    [(SST2, "sst2", [1, 0, 1, 0], False), (MRPC, "mrpc", [1, 0, 1], True),
     (RTE, "rte", [0, 1, 0], True)],
)  # fmt: skip
def test_format_is_told_from_the_header_and_labels_parsed(tmp_path, lines, name, labels, pair):
    write_task(tmp_path, lines)
    fmt, split = read_tsv(tmp_path / "train.tsv")
    assert fmt.name == name
    assert split.labels.tolist() == labels
    assert (split.texts_b is not None) == pair
    cols = lines[1].split("\t")
    assert split.texts_a[0] == cols[{"sst2": 0, "mrpc": 3, "rte": 1}[name]]


@pytest.mark.parametrize("lines", [SST2, MRPC, RTE])
def test_spec_loads_ids_that_decode_back_to_the_lowercased_text(tmp_path, lines):
    root = write_task(tmp_path / "task", lines, test=["index\tsentence", "0\tunlabeled"])
    spec = f"glue:{root},length=48,vocab=300"
    info = dataset_info(spec)
    ds = load_dataset(spec, "train")
    assert info.input_shape == (48,) and info.num_classes == 2
    assert len(ds) == len(lines) - 1 and len(load_dataset(spec, "test")) == len(lines) - 1
    _, split = read_tsv(root / "train.tsv")
    tok = glue_tokenizer(root, 300)
    for i in range(len(ds)):
        x, y = ds[i]
        assert y == split.labels[i] and int(x.max()) < info.vocab_size
        want = split.texts_a[i] + (f" {split.texts_b[i]}" if split.texts_b else "")
        assert decode(tok, x.numpy()) == want.lower()


def test_tokenizer_is_the_same_when_trained_twice_and_cached_by_content(tmp_path):
    from edgeslim.data.wordpiece import train_wordpiece

    texts = [ln.split("\t")[0] for ln in SST2[1:]] * 3
    assert train_wordpiece(texts, 200).to_str() == train_wordpiece(texts, 200).to_str()
    a = write_task(tmp_path / "a", SST2)
    b = write_task(tmp_path / "b", [*SST2, "an extra row of words\t1"])
    assert glue_tokenizer(a, 300).get_vocab() != glue_tokenizer(b, 300).get_vocab()


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("only one column", "expected 2 tab-separated columns"),
        ("a fine film\tmaybe", "unknown label 'maybe'"),
        ("   \t1", "empty text in column 'sentence'"),
    ],
)
def test_a_malformed_row_names_file_and_line(tmp_path, bad_line, message):
    lines = [*SST2[:3], bad_line, *SST2[3:]]
    root = write_task(tmp_path, SST2, dev=lines)
    with pytest.raises(EdgeslimError, match=rf"dev\.tsv:4: {message}"):
        load_dataset(f"glue:{root}", "val")


def test_rte_label_outside_its_names_and_mrpc_column_count(tmp_path):
    rte = write_task(tmp_path / "rte", [*RTE, "3\ta\tb\tcontradiction"])
    with pytest.raises(EdgeslimError, match=r"train\.tsv:5: unknown label 'contradiction'"):
        read_tsv(rte / "train.tsv")
    mrpc = write_task(tmp_path / "mrpc", [*MRPC[:2], "1\t5\tone string only", *MRPC[2:]])
    with pytest.raises(EdgeslimError, match=r"train\.tsv:3: expected 5 tab-separated"):
        read_tsv(mrpc / "train.tsv")


def test_missing_files_unknown_header_and_bad_options_are_clear(tmp_path):
    with pytest.raises(EdgeslimError, match="GLUE task folder not found"):
        dataset_info(f"glue:{tmp_path / 'nowhere'}")
    (tmp_path / "t").mkdir()
    with pytest.raises(EdgeslimError, match=r"GLUE file not found: .*train\.tsv"):
        dataset_info(f"glue:{tmp_path / 't'}")
    (tmp_path / "t" / "train.tsv").write_text("text\tgold\nhello\t1\n")
    with pytest.raises(EdgeslimError, match=r"train\.tsv:1: cannot tell the GLUE task"):
        dataset_info(f"glue:{tmp_path / 't'}")
    with pytest.raises(EdgeslimError, match="bad glue option"):
        parse_arg(f"{tmp_path},length=abc")
    with pytest.raises(EdgeslimError, match="needs a path"):
        dataset_info("glue")


def test_train_and_dev_of_different_tasks_are_refused(tmp_path):
    root = write_task(tmp_path, SST2, dev=RTE)
    with pytest.raises(EdgeslimError, match="train.tsv is sst2 but dev.tsv is rte"):
        dataset_info(f"glue:{root}")
