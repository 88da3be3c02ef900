"""Training options the user leaves out take the data's task's defaults: a detector gets
YOLOv5's SGD (lr 0.01, momentum 0.937, batch 16), a classifier edgeslim's (0.1, 0.9, 128),
and an option given on the command line always wins."""

import argparse

import pytest

from edgeslim.cli.common import add_train_args, train_config


def config(*argv):
    p = argparse.ArgumentParser()
    p.add_argument("--data")
    p.add_argument("--epochs", type=int, default=1)
    add_train_args(p)
    return train_config(p.parse_args(list(argv)))


@pytest.mark.parametrize(
    "data, want",
    [
        ("driving:n=8,size=64", (0.01, 0.937, 16)),
        ("signs", (0.1, 0.9, 128)),
        (None, (0.1, 0.9, 128)),
    ],
)
def test_task_defaults(data, want):
    cfg = config(*(["--data", data] if data else []))
    assert (cfg.lr, cfg.momentum, cfg.batch_size) == want


def test_given_options_win():
    cfg = config("--data", "driving:n=8,size=64", "--lr", "0.05", "--batch-size", "4",
                 "--momentum", "0.8")  # fmt: skip
    assert (cfg.lr, cfg.momentum, cfg.batch_size) == (0.05, 0.8, 4)
    assert config("--data", "driving:n=8,size=64", "--lr", "auto").lr == "auto"
