"""The evaluation protocol of the FALSR release (Table I), and the tools built on it.

- :mod:`falsr.protocol.color`       YPbPr (the network's input) and YCbCr (the metrics') conversions
- :mod:`falsr.protocol.resize`      MATLAB-compatible bicubic downscale (the benchmark LR files), PIL bicubic x2
- :mod:`falsr.protocol.metrics`     PSNR / SSIM on Y with a `scale`-pixel border crop (x2: 2); protocols falsr/matlab
- :mod:`falsr.protocol.images`      reading and writing images
- :mod:`falsr.protocol.benchmarks`  benchmark folders (release layout or HR only)
- :mod:`falsr.protocol.pipeline`    LR RGB -> SR RGB as the release does it (Y through the network, bicubic chroma),
  tiling, ``pick_device``, inference precisions
- :mod:`falsr.protocol.evaluate`    ``evaluate.py``: Table-I-like tables
- :mod:`falsr.protocol.bicubic`     ``model=bicubic``: the MATLAB-bicubic baseline of ``evaluate.py`` at x2/x3/x4
- :mod:`falsr.protocol.upscale`     ``upscale.py``: images or folders, PyTorch or an exported ONNX file
- :mod:`falsr.protocol.compare`     ``compare.py``: the paper's Fig.-7-like crops
"""
