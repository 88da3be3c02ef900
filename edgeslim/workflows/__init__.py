"""Jobs above the algorithms: train, compress, export, time and report.

Algorithm packages (:mod:`edgeslim.prune`, :mod:`edgeslim.quant`,
:mod:`edgeslim.distill`) return a model and a record; the jobs here load data,
fine-tune, export to ONNX, time on a runtime and write reports. The CLI and the
recipe stages call these jobs. ``lint-imports`` (pyproject.toml) keeps the
direction: nothing below this layer imports it.

- :mod:`edgeslim.workflows.train`: ``train_model`` and the cached ``pretrained`` zoo baselines;
- :mod:`edgeslim.workflows.prune`: ``run_prune`` (``edgeslim prune``);
- :mod:`edgeslim.workflows.quantize`: ``run_quantize`` (``edgeslim quantize``);
- :mod:`edgeslim.workflows.distill`: ``distill_model`` (``edgeslim distill``);
- :mod:`edgeslim.workflows.measure`: the one measure-and-record helper every job uses.
"""
