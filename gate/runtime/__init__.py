"""The device-portable runtime: what runs next to ONNX Runtime, on this host or copied to a remote device.

Every module here imports only numpy, onnxruntime, the standard library and each other
(``tests/test_architecture.py`` fails otherwise), because :mod:`gate.device.remote` copies this package as a
whole to a device that has nothing else.

- :mod:`~gate.runtime.ort_decoder`: ``OrtDecoder`` (prefill/decode with a KV cache) and ``SessionConfig``.
- :mod:`~gate.runtime.bbq_scoring`: BBQ option scoring on the artifact (log-likelihood, letter), prefix KV reuse.
- :mod:`~gate.runtime.providers`: execution-provider plans and per-operator placement.
- :mod:`~gate.runtime.bench_child`: the latency/memory measuring process (one per measurement).
- :mod:`~gate.runtime.device_runner`: the command runner executed on a remote device.
- :mod:`~gate.runtime.environment`, :mod:`~gate.runtime.errors`: provenance and the shared ``InputError``.
"""
