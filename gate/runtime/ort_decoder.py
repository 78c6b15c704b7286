"""Run an optimum-exported decoder (``model.onnx`` with KV cache) on ONNX Runtime.

The exported graph (optimum ``text-generation-with-past``) takes ``input_ids``, ``attention_mask``,
``position_ids`` and ``past_key_values.{i}.{key,value}`` (shape ``[batch, kv_heads, past_len, head_dim]``)
and returns ``logits`` (``[batch, seq, vocab]``) and ``present.{i}.{key,value}``. The first step passes
an empty past (``past_len = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from gate.runtime import bench_child

KVCache = dict[str, np.ndarray]


@dataclass(frozen=True)
class SessionConfig:
    """How an ONNX Runtime session is built; recorded in reports.

    Attributes:
        providers: execution providers in priority order, e.g. ``("CPUExecutionProvider",)``.
        intra_op_threads: ``SessionOptions.intra_op_num_threads`` (0 = ORT's default, one per core).
        graph_optimization: ``"all"``, ``"extended"``, ``"basic"`` or ``"disable"``.
        allow_spinning: ``session.intra_op.allow_spinning``; off by default for fair CPU sharing.
        provider_options: ``{provider: {option: value}}`` (strings) for providers in ``providers``, e.g. from a
            hardware profile; providers without an entry get ORT's defaults.
    """

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int = 0
    graph_optimization: str = "all"
    allow_spinning: bool = False
    provider_options: dict[str, dict[str, str]] = field(default_factory=dict)

    def ort_providers(self) -> list:
        """The ``providers`` argument of ``onnxruntime.InferenceSession``: names, or ``(name, options)`` pairs."""
        return [(p, dict(self.provider_options[p])) if self.provider_options.get(p) else p for p in self.providers]

    def session_options(self) -> ort.SessionOptions:
        """Build the ``onnxruntime.SessionOptions`` for this configuration.

        Built by :func:`gate.runtime.bench_child.session_options` (the standalone benchmark child holds the one
        definition, since it cannot import this module), so scoring and measurement sessions match; ORT's
        CPU arena and weight pre-packing stay at their defaults (on).

        Raises:
            KeyError: ``graph_optimization`` is not one of ``"all"``, ``"extended"``, ``"basic"``, ``"disable"``.
        """
        return bench_child.session_options({"intra_op_threads": self.intra_op_threads,
                                            "graph_optimization": self.graph_optimization,
                                            "allow_spinning": self.allow_spinning})


class OrtDecoder:
    """A causal LM exported by optimum, run step by step with its KV cache on ONNX Runtime.

    Args:
        model_path: path to ``model.onnx`` (external data beside it is found by ORT).
        config: session configuration; default CPU execution provider.

    Raises:
        ValueError: when the graph lacks ``input_ids``/``logits`` or KV-cache inputs.
    """

    def __init__(self, model_path: str | Path, config: SessionConfig = SessionConfig()):
        self.config = config
        self.session = ort.InferenceSession(str(model_path), config.session_options(), providers=config.ort_providers())
        inputs = {i.name: i for i in self.session.get_inputs()}
        if "input_ids" not in inputs or "logits" not in [o.name for o in self.session.get_outputs()]:
            raise ValueError(f"{model_path} is not a decoder export (needs input 'input_ids' and output 'logits')")
        self.past_names = sorted(
            (n for n in inputs if n.startswith("past_key_values.")), key=lambda n: (int(n.split(".")[1]), n)
        )
        if not self.past_names:
            raise ValueError(f"{model_path} has no KV-cache inputs; export with task text-generation-with-past")
        self.present_names = [n.replace("past_key_values.", "present.") for n in self.past_names]
        self.has_position_ids = "position_ids" in inputs
        self.has_attention_mask = "attention_mask" in inputs
        shape = inputs[self.past_names[0]].shape
        self.kv_heads = int(shape[1])
        self.head_dim = int(shape[3])
        self.dtype = np.float16 if "float16" in inputs[self.past_names[0]].type else np.float32

    def empty_cache(self, batch: int = 1) -> KVCache:
        """A KV cache with ``past_len = 0`` for ``batch`` sequences."""
        z = np.zeros((batch, self.kv_heads, 0, self.head_dim), dtype=self.dtype)
        return {n: z for n in self.past_names}

    @staticmethod
    def cache_len(cache: KVCache) -> int:
        """Number of positions held in ``cache``."""
        return int(next(iter(cache.values())).shape[2])

    def step(self, input_ids: np.ndarray, cache: KVCache | None = None) -> tuple[np.ndarray, KVCache]:
        """Run new tokens through the model after the positions already in ``cache``.

        Args:
            input_ids: int64 array ``[batch, new_len]``.
            cache: KV cache from a previous step (``None`` = empty).

        Returns:
            ``(logits, cache)``: float32 logits ``[batch, new_len, vocab]`` and the extended cache.
        """
        input_ids = np.asarray(input_ids, dtype=np.int64)
        batch, new_len = input_ids.shape
        cache = cache if cache is not None else self.empty_cache(batch)
        past = self.cache_len(cache)
        feeds: dict[str, np.ndarray] = {"input_ids": input_ids}
        if self.has_attention_mask:
            feeds["attention_mask"] = np.ones((batch, past + new_len), dtype=np.int64)
        if self.has_position_ids:
            feeds["position_ids"] = np.broadcast_to(np.arange(past, past + new_len, dtype=np.int64), (batch, new_len)).copy()
        feeds.update(cache)
        outputs = self.session.run(["logits", *self.present_names], feeds)
        new_cache = dict(zip(self.past_names, outputs[1:]))
        return outputs[0].astype(np.float32, copy=False), new_cache

    def logits(self, token_ids: Sequence[int]) -> np.ndarray:
        """Logits ``[len, vocab]`` for one sequence run from an empty cache."""
        out, _ = self.step(np.asarray([list(token_ids)], dtype=np.int64))
        return out[0]
