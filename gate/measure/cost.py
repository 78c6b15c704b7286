"""Static cost of an artifact, read from the graph ONNX Runtime runs: what a token costs, before anything is timed.

Naming rule of this module: a *weight node* is a node of the graph that reads a constant weight (an initializer):
a matrix product (``MatMul``, ``Gemm``, ``FusedMatMul``, ``MatMulInteger``, ``DynamicQuantizeMatMul``,
``MatMulIntegerToFloat``, ``com.microsoft.MatMulNBits``) or an embedding lookup (``Gather``,
``com.microsoft.GatherBlockQuantized``). Its *kernel* is ``(op type, weight dtype, weight shape)``.

Per token, for each weight node:

* **multiply-accumulates** ``K * N`` for a ``K x N`` product (``MatMulNBits``: its ``K`` and ``N`` attributes), 0 for
  a lookup; FLOPs = 2 x MACs. Prefill of ``L`` tokens costs ``L`` times that; decode, one token.
* **weight bytes read**: the stored bytes of the weight and of its scales and zero points (the node's other
  initializer inputs) for a product; one row of the table for a lookup. In decode at batch 1 each weight is
  read once per token; in prefill once per ``L`` tokens.

What this predicts: at batch 1, CPU decode is memory-bound (the arithmetic intensity of a matrix-vector product
is about 2 FLOPs per weight element, far below a CPU's FLOPs-per-byte balance point: the roofline model,
Williams, Waterman & Patterson 2009, "Roofline", CACM 52(4)), so the ratio of weight bytes read per decode token,
baseline / candidate, bounds the decode speedup a candidate can reach (:func:`compare_costs`). A candidate whose
kernels equal the baseline's (unstructured or N:M zeros stored dense) runs the same work: no speedup and no saving
is structurally possible, whatever a timing says.

Attention over the KV cache (its cost grows with the context) and element-wise ops are left out: they are the same
for a baseline and a candidate that keep the architecture, so they do not change which kernels differ; the totals
are therefore a lower bound of a token's work, and the report says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

PRODUCT_OPS = ("MatMul", "Gemm", "FusedMatMul", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
               "MatMulNBits")
LOOKUP_OPS = ("Gather", "GatherBlockQuantized")
SUBBYTE_BITS = {21: 4, 22: 4, 23: 4, 25: 2, 26: 2}  # TensorProto UINT4, INT4, FLOAT4E2M1, UINT2, INT2: bits/element


def _itemsize_bits(data_type: int) -> int:
    if data_type in SUBBYTE_BITS:
        return SUBBYTE_BITS[data_type]
    from onnx.helper import tensor_dtype_to_np_dtype

    return 8 * tensor_dtype_to_np_dtype(data_type).itemsize


def _dtype(data_type: int) -> str:
    from onnx import TensorProto

    return TensorProto.DataType.Name(data_type).lower()


def tensor_bytes(tensor) -> int:
    """Stored bytes of an initializer from its dims and dtype (no data is loaded; external data counts)."""
    n = math.prod(int(d) for d in tensor.dims)
    return (n * _itemsize_bits(tensor.data_type) + 7) // 8


@dataclass(frozen=True)
class WeightNode:
    """One weight node (module docstring).

    Attributes:
        name: node name; op: op type (``domain.`` prefix for non-ONNX domains).
        weight: the weight initializer's name; dtype: its element type (``float``, ``uint8``, ``int4``, ...);
        shape: its stored dims.
        macs_per_token: multiply-accumulates per token (0 for a lookup).
        bytes_per_decode_token: weight bytes read per decode token (incl. scales and zero points).
        bytes_total: stored bytes of the weight and its quantization parameters.
    """

    name: str
    op: str
    weight: str
    dtype: str
    shape: tuple[int, ...]
    macs_per_token: int
    bytes_per_decode_token: int
    bytes_total: int

    @property
    def kernel(self) -> tuple[str, str, tuple[int, ...]]:
        """``(op, dtype, shape)``: what decides which kernel runs on which shape."""
        return (self.op, self.dtype, self.shape)


def _attr(node, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            from onnx import helper

            return helper.get_attribute_value(a)
    return default


def weight_nodes(graph) -> list[WeightNode]:
    """Every weight node of an ONNX ``GraphProto`` (subgraphs included), in graph order.

    Args:
        graph: e.g. ``onnx.load(path, load_external_data=False).graph`` of the ORT-optimized model.

    Returns:
        one :class:`WeightNode` per node that reads a constant weight (module docstring for the cost rule).
    """
    inits: dict[str, object] = {}
    nodes = []

    def walk(g) -> None:
        for t in g.initializer:
            inits[t.name] = t
        for n in g.node:
            nodes.append(n)
            for a in n.attribute:
                if a.type == a.GRAPH:
                    walk(a.g)
                elif a.type == a.GRAPHS:
                    for sub in a.graphs:
                        walk(sub)

    walk(graph)
    out: list[WeightNode] = []
    for n in nodes:
        op = n.op_type
        label = (n.domain + "." if n.domain and n.domain not in ("", "ai.onnx") else "") + op
        if op in PRODUCT_OPS:
            w_name = n.input[1] if len(n.input) > 1 else ""
            w = inits.get(w_name)
            if w is None:
                continue
            qparams = sum(tensor_bytes(inits[i]) for i in list(n.input)[2:] if i in inits)
            if op == "MatMulNBits":
                k, m = int(_attr(n, "K", 0)), int(_attr(n, "N", 0))
            elif len(w.dims) >= 2:
                k, m = int(w.dims[-2]), int(w.dims[-1])
                if op == "Gemm" and _attr(n, "transB", 0):
                    k, m = m, k
            else:
                continue
            b = tensor_bytes(w) + qparams
            out.append(WeightNode(n.name, label, w_name, _dtype(w.data_type), tuple(int(d) for d in w.dims), k * m, b, b))
        elif op in LOOKUP_OPS:
            w_name = n.input[0] if n.input else ""
            w = inits.get(w_name)
            if w is None or not w.dims:
                continue
            qparams = sum(tensor_bytes(inits[i]) for i in list(n.input)[2:] if i in inits)
            total = tensor_bytes(w) + qparams
            rows = int(w.dims[0]) or 1
            out.append(WeightNode(n.name, label, w_name, _dtype(w.data_type), tuple(int(d) for d in w.dims), 0,
                                  math.ceil(total / rows), total))
    return out


def static_cost(graph) -> dict:
    """Per-token cost of a graph's weight nodes, for the report.

    Returns:
        ``{"decode": {"flops_per_token", "weight_bytes_per_token"}, "kernels": [{"op", "dtype", "shape", "count"}],
        "prefill": {"flops_per_token",
        "weight_bytes_per_prompt"}, "by_op_dtype": {"<op>/<dtype>": {"nodes", "macs_per_token",
        "weight_bytes"}}, "n_weight_nodes", "method"}`` (FLOPs = 2 x MACs; bytes).
    """
    nodes = weight_nodes(graph)
    groups: dict[str, dict[str, int]] = defaultdict(lambda: {"nodes": 0, "macs_per_token": 0, "weight_bytes": 0})
    for w in nodes:
        g = groups[f"{w.op}/{w.dtype}"]
        g["nodes"] += 1
        g["macs_per_token"] += w.macs_per_token
        g["weight_bytes"] += w.bytes_total
    macs = sum(w.macs_per_token for w in nodes)
    kernels: dict[tuple, int] = defaultdict(int)
    for w in nodes:
        kernels[w.kernel] += 1
    return {
        "decode": {"flops_per_token": 2 * macs, "weight_bytes_per_token": sum(w.bytes_per_decode_token for w in nodes)},
        "kernels": [{"op": op, "dtype": dt, "shape": list(shape), "count": k}
                    for (op, dt, shape), k in sorted(kernels.items())],
        "prefill": {"flops_per_token": 2 * macs, "weight_bytes_per_prompt": sum(w.bytes_total for w in nodes)},
        "by_op_dtype": dict(sorted(groups.items())),
        "n_weight_nodes": len(nodes),
        "method": "weight nodes of the ONNX Runtime-optimized graph (matrix products and embedding lookups on "
                  "constant weights): MACs K*N per token, weight bytes as stored incl. scales and zero points, one "
                  "table row per token for a lookup; attention over the KV cache and element-wise ops left out "
                  "(a lower bound, the same for both sides of a comparison)",
    }


def compare_costs(baseline: dict, candidate: dict) -> dict:
    """Whether a candidate runs the baseline's kernels, and the decode speedup its weight bytes allow.

    Args:
        baseline, candidate: :func:`static_cost` results (``size.op_types.static_cost`` in a report) or
            ``GraphProto`` objects of the ORT-optimized models.

    Returns:
        ``{"same_kernels": bool, "kernels_differ": int (weight nodes whose (op, dtype, shape) is not in the
        baseline's multiset), "decode_bytes_ratio": baseline / candidate weight bytes per decode token (x),
        "decode_flops_ratio": baseline / candidate FLOPs per token (x), "predicted_decode_speedup_bound": the
        bytes ratio (memory-bound decode, roofline; 1.0 for the same kernels), "verdict", "method"}``.
    """
    from collections import Counter

    b = baseline if isinstance(baseline, dict) else static_cost(baseline)
    c = candidate if isinstance(candidate, dict) else static_cost(candidate)

    def multiset(cost: dict) -> Counter:
        return Counter({(k["op"], k["dtype"], tuple(k["shape"])): int(k["count"]) for k in cost["kernels"]})

    bk, ck = multiset(b), multiset(c)
    same = bk == ck
    b_bytes, c_bytes = b["decode"]["weight_bytes_per_token"], c["decode"]["weight_bytes_per_token"]
    b_flops, c_flops = b["decode"]["flops_per_token"], c["decode"]["flops_per_token"]
    ratio = b_bytes / c_bytes if c_bytes else None
    return {
        "same_kernels": same,
        "kernels_differ": sum((ck - bk).values()),
        "decode_bytes_ratio": ratio,
        "decode_flops_ratio": (b_flops / c_flops) if c_flops else None,
        "predicted_decode_speedup_bound": 1.0 if same else ratio,
        "verdict": "no speedup or saving structurally possible: the same kernels on the same shapes and dtypes"
                   if same else "different kernels: the decode speedup is bounded by the weight-bytes ratio",
        "method": "multisets of (op type, weight dtype, weight shape) of the weight nodes of the ORT-optimized graphs "
                  "compared; bound = baseline / candidate weight bytes read per decode token (batch-1 decode is "
                  "memory-bound: roofline, Williams et al. 2009)",
    }


__all__ = ["LOOKUP_OPS", "PRODUCT_OPS", "WeightNode", "compare_costs", "static_cost", "tensor_bytes", "weight_nodes"]
