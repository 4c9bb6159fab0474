"""The search space: what a network is, how it is built and what it costs.

- :mod:`falsr.space.genome`   the encoding: 192 cell choices x n cells + connection bits, cell names, the string
  form and the data form of a model config (cells + inputs), canonical keys
- :mod:`falsr.space.network`  the builder (``build_network``: fresh weights): feature extractor, cells, upsampler
- :mod:`falsr.space.cost`     params and mult-adds computed analytically (no torch)
"""
