"""Compression methods applied to a PyTorch model before export.

Naming: *sparsity* is the fraction of zeroed weights of the pruned ``nn.Linear`` layers; *N:M* means N zeros in
every M consecutive input columns; the *calibration set* is the seeded text windows calibrated methods see.
Imports run one way: ``masks`` <- ``layerwise`` <- ``wanda``/``sparsegpt`` <- ``pruning`` (the entry point).

- :mod:`exporters.compression.masks`: weight masks and the module set pruning touches.
- :mod:`exporters.compression.pruning`: ``prune_model`` (random, magnitude, Wanda, SparseGPT; unstructured, N:M).
- :mod:`exporters.compression.wanda`, :mod:`exporters.compression.sparsegpt`, :mod:`exporters.compression.layerwise`.
- :mod:`exporters.compression.structured`: MLP-neuron removal (FLAP's Wanda-SP score).
- :mod:`exporters.compression.calibration`: the calibration windows.
"""
