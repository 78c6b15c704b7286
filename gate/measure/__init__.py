"""Measurements of an artifact: latency and memory on ONNX Runtime, size and sparsity, perplexity.

- :mod:`~gate.measure.harness`: the latency/memory protocol (fresh, interleaved child processes).
- :mod:`~gate.measure.latency_stats`: p50/p95, CVs and the across-process bootstrap of speedups.
- :mod:`~gate.measure.efficiency`: speedup, memory and storage savings, budget facts.
- :mod:`~gate.measure.artifact_stats`: zeros, dtypes and bytes measured in the ONNX initializers.
- :mod:`~gate.measure.perplexity`: perplexity on the artifact (sliding windows).
"""
