"""edgeslim: smaller, faster PyTorch models for edge deployment, proven by measurement.

The public API is organised by package: ``edgeslim.models`` (zoo and model specs),
``edgeslim.data`` (built-in data and loaders), ``edgeslim.bench`` (MACs, size,
latency, accuracy), ``edgeslim.export`` (ONNX + ONNX Runtime) and
``edgeslim.train`` (the trainer).
"""

__version__ = "0.1.0"
