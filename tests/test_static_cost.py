"""Static cost from the graph (gate/measure/cost.py): kernels, FLOPs and weight bytes per token, on tiny graphs."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from gate.measure.cost import compare_costs, static_cost, weight_nodes


def _graph(weight: np.ndarray, *, table: np.ndarray | None = None, nbits: bool = False):
    nodes, inits = [], []
    k, n = weight.shape
    if nbits:  # MatMulNBits: B uint8 [N, K/32, 16], scales [N * K/32]
        blocks = k // 32
        inits += [numpy_helper.from_array(np.zeros((n, blocks, 16), np.uint8), "W"),
                  numpy_helper.from_array(np.ones(n * blocks, np.float32), "W_scale")]
        nodes.append(helper.make_node("MatMulNBits", ["x", "W", "W_scale"], ["y"], domain="com.microsoft", K=k, N=n,
                                      bits=4, block_size=32, name="proj"))
    else:
        inits.append(numpy_helper.from_array(weight, "W"))
        nodes.append(helper.make_node("MatMul", ["x", "W"], ["y"], name="proj"))
    if table is not None:
        inits.append(numpy_helper.from_array(table, "E"))
        nodes.append(helper.make_node("Gather", ["E", "ids"], ["emb"], name="embed"))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k]),
                                       helper.make_tensor_value_info("ids", TensorProto.INT64, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])], initializer=inits)
    return g


def test_cost_of_a_product_and_a_lookup():
    rng = np.random.default_rng(0)
    g = _graph(rng.normal(size=(64, 32)).astype(np.float32), table=rng.normal(size=(100, 64)).astype(np.float32))
    nodes = {w.name: w for w in weight_nodes(g)}
    assert nodes["proj"].macs_per_token == 64 * 32 and nodes["proj"].bytes_per_decode_token == 64 * 32 * 4
    assert nodes["embed"].macs_per_token == 0 and nodes["embed"].bytes_per_decode_token == 64 * 4  # one row
    c = static_cost(g)
    assert c["decode"] == {"flops_per_token": 2 * 64 * 32, "weight_bytes_per_token": 64 * 32 * 4 + 64 * 4}
    assert c["prefill"]["weight_bytes_per_prompt"] == (64 * 32 + 100 * 64) * 4
    assert c["by_op_dtype"]["MatMul/float"] == {"nodes": 1, "macs_per_token": 2048, "weight_bytes": 8192}


def test_zeros_stored_dense_are_the_same_kernels_no_speedup_possible():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(64, 32)).astype(np.float32)
    pruned = w.copy()
    pruned[np.abs(pruned) < np.median(np.abs(pruned))] = 0.0  # 50 % unstructured sparsity, stored dense
    cmp = compare_costs(_graph(w), _graph(pruned))
    assert cmp["same_kernels"] and cmp["kernels_differ"] == 0
    assert cmp["predicted_decode_speedup_bound"] == 1.0 and cmp["decode_bytes_ratio"] == 1.0
    assert cmp["verdict"].startswith("no speedup or saving structurally possible")


def test_int4_product_reads_about_an_eighth_of_the_bytes():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(64, 32)).astype(np.float32)
    q = _graph(w, nbits=True)
    (node,) = weight_nodes(q)
    assert node.op == "com.microsoft.MatMulNBits" and node.macs_per_token == 64 * 32
    assert node.bytes_per_decode_token == 32 * 2 * 16 + 32 * 2 * 4  # packed nibbles + fp32 scales
    cmp = compare_costs(_graph(w), q)
    assert not cmp["same_kernels"] and cmp["kernels_differ"] == 1
    assert cmp["decode_flops_ratio"] == 1.0  # the same arithmetic: the bound comes from the bytes
    assert cmp["predicted_decode_speedup_bound"] == (64 * 32 * 4) / (32 * 2 * 16 + 32 * 2 * 4)
