"""What an exported ONNX artifact really contains: measured sparsity and size accounting.

Two report entries are built from the model file itself, never from the PyTorch model or from what the
compression step says it did:

* ``onnx_sparsity`` — the fraction of parameters that are exactly zero, over the pruned linears
  (the reference definition: the q/k/v/o/gate/up/down projections of the decoder layers, locuslab/wanda
  ``lib/prune.py`` ``check_sparsity``, which leaves embeddings and ``lm_head`` out of numerator and
  denominator) and over all parameters (embeddings are a large share of a small model's weights), per layer type.
* ``size_accounting`` — bytes on disk, zstd/gzip bytes (the over-the-air download: the only place
  unstructured sparsity pays off on ONNX Runtime, which converts sparse initializers to dense tensors at load
  and has no sparse kernel for pruned weights, microsoft/onnxruntime PR #5540 and issue #5578), parameters,
  bytes per parameter, a breakdown by dtype and the op types of the graph ONNX Runtime actually runs.

How initializers are attributed to layers: the torch exporter stores MatMul weights transposed under names
such as ``onnx::MatMul_1234``; optimum deduplicates identical tensors and re-creates the aliases with
``Identity`` nodes; quantizers rename weights (``*_quantized``, ``*_Q4``). So a tensor's layer is found from
its own name and from the names of the nodes that consume it, following pass-through nodes (Identity,
Transpose, Cast, Reshape, ...), e.g. ``/model/layers.0/self_attn/q_proj/MatMul``.

How quantized weights are counted (a weight is a zero when its *dequantized* value is exactly 0):

* ``DequantizeLinear`` (ONNX spec): ``(x - zero_point) * scale`` per tensor, per axis or per block;
* ``MatMulInteger`` (ONNX spec; ``quantize_dynamic`` output): the weight is ``B - b_zero_point`` (the scale is
  applied by a separate ``Mul`` and is never 0), so a zero is ``B == b_zero_point``;
* ``DynamicQuantizeMatMul`` / ``MatMulIntegerToFloat`` (ORT contrib ops, the fused forms):
  ``(B - b_zero_point) * b_scale`` per tensor or per output column;
* ``MatMulNBits`` (ORT contrib op; ``MatMulNBitsQuantizer``): ``B`` is ``[N, k_blocks, blob]`` of
  ``bits``-bit values packed low bits first, ``scales`` ``[N * k_blocks]``, optional ``zero_points`` packed
  the same way per row (or float), default zero point ``2**(bits-1)``; the value is ``(q - zp) * scale``,
  and the padding of the last block beyond ``K`` is not counted;
* ``GatherBlockQuantized`` (ORT contrib op): ``(q - zp) * scale`` per block along ``quantize_axis``; uint8
  data is packed like MatMulNBits with default zero point ``2**(bits-1)``, int4/uint4 data default to 0.

The dequantization rules follow microsoft/onnxruntime docs/ContribOperators.md and are checked against ONNX
Runtime's own kernels in tests/test_artifact_stats.py (the layer's output on an identity input).

How ``sparse_initializer`` tensors are counted (ONNX ``GraphProto.sparse_initializer``, ``SparseTensorProto``:
``values`` [NNZ], ``indices`` [NNZ] linearized or [NNZ, rank], ``dims`` the dense shape): each is a parameter
tensor of its dense shape, ``params = prod(dims)``, ``zeros = prod(dims) - NNZ`` plus the stored values that are
0, its stored bytes those of ``values`` and ``indices``. They are read into dense arrays, so their layer and
quantization are found as for a dense initializer. ONNX Runtime converts every sparse initializer to a dense
tensor when it loads the session (onnxruntime ``Graph`` constructor, ``onnxruntime/core/graph/graph.cc``,
``SparseTensorProtoToDenseTensorProto``; issue #5578): a sparse initializer saves bytes on disk and in the
download, not memory or latency. ``sparse_initializers`` in both report entries lists them.
"""

from __future__ import annotations

import gzip
import re
import tempfile
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gate.runtime.errors import InputError

LAYER_TYPES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_lm_head", "norm", "other")
PRUNED_LINEAR_TYPES = LAYER_TYPES[:7]
ZSTD_LEVEL = 3  # zstd's own default level (the `zstd` CLI without -#)
GZIP_LEVEL = None  # gzip is opt-in (6 = gzip's default): single-threaded zlib runs at ~8 MB/s, 67 s for 539 MB here
_CHUNK = 1 << 24

# Ops that only move or re-type a tensor: their consumers tell what a weight is used for.
_PASS_THROUGH = {"Identity", "Transpose", "Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "DequantizeLinear"}
# Input slots holding quantization metadata (scales, zero points, group index), per op type.
_META_SLOTS = {
    "DequantizeLinear": {1, 2},
    "MatMulInteger": {2, 3},
    "DynamicQuantizeMatMul": {2, 3},
    "MatMulIntegerToFloat": {2, 3, 4, 5},
    "MatMulNBits": {2, 3, 4},
    "GatherBlockQuantized": {2, 3},
}
# Input slot of the quantized weight itself, per op type (same ops as ``_META_SLOTS``).
_WEIGHT_SLOT = {"DequantizeLinear": 0, "GatherBlockQuantized": 0, "MatMulInteger": 1, "DynamicQuantizeMatMul": 1,
                "MatMulIntegerToFloat": 1, "MatMulNBits": 1}
_NAME_RULES = [
    ("embed_lm_head", re.compile(r"embed_tokens|lm_head|wte\b|word_embeddings|embed_out")),
    *[(t, re.compile(rf"(?<![a-z]){t}(?![a-z])")) for t in PRUNED_LINEAR_TYPES],
    ("norm", re.compile(r"norm|(?<![a-z])ln_")),
]
_LAYER_INDEX = re.compile(r"layers[./](\d+)")


@dataclass
class ParamTensor:
    """One stored parameter tensor of the artifact.

    Attributes:
        name: initializer name.
        layer_type: one of ``LAYER_TYPES``.
        layer: decoder-layer index when known.
        params: logical number of weights (e.g. ``K * N`` for a packed 4-bit matrix).
        zeros: weights whose (dequantized) value is exactly 0.
        stored_bytes: bytes of the stored tensor (packed data for quantized weights, metadata excluded).
        dtype: stored element type, e.g. ``"float32"``, ``"int8"``, ``"uint4"``.
        quantization: ``None`` or the op that dequantizes it (``"MatMulNBits"``, ...).
        sparse_nnz: for a ``sparse_initializer``, its number of stored values (NNZ); ``None`` for a dense one.
    """

    name: str
    layer_type: str
    layer: int | None
    params: int
    zeros: int
    stored_bytes: int
    dtype: str
    quantization: str | None = None
    sparse_nnz: int | None = None


@dataclass
class Inventory:
    """Every initializer of one ``.onnx`` graph, sorted into parameters, quantization metadata and constants.

    Attributes:
        model_path: the graph that was read.
        params: parameter tensors (float tensors with more than one element, and quantized weights).
        metadata_bytes: bytes of scales/zero points/group indices of quantized weights, by dtype.
        constants: ``{"tensors", "elements", "bytes"}`` of scalar or integer initializers (shapes, indices).
        constant_nodes: ``{"count", "elements"}`` of ``Constant`` nodes (rotary tables, shapes; not parameters).
        tied_embedding: whether one stored tensor feeds both the embedding ``Gather`` and the ``lm_head``.
    """

    model_path: Path
    params: list[ParamTensor] = field(default_factory=list)
    metadata_bytes: dict = field(default_factory=lambda: defaultdict(int))
    constants: dict = field(default_factory=lambda: {"tensors": 0, "elements": 0, "bytes": 0})
    constant_nodes: dict = field(default_factory=lambda: {"count": 0, "elements": 0})
    tied_embedding: bool = False


def _model_path(onnx_dir: Path) -> Path:
    path = Path(onnx_dir) / "model.onnx"
    if not path.is_file():
        raise InputError(f"ONNX artifact {onnx_dir}: no model.onnx; pass an optimum export directory (text-generation-with-past)")
    return path


def _all_nodes(graph):
    """Nodes of ``graph`` and of its subgraphs (``If``/``Loop`` bodies), depth first."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            subs = list(attr.graphs) + ([attr.g] if attr.HasField("g") else [])
            for sub in subs:
                yield from _all_nodes(sub)


def _all_initializers(graph):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                yield from _all_initializers(sub)


def _all_sparse_initializers(graph):
    yield from graph.sparse_initializer
    for node in graph.node:
        for attr in node.attribute:
            for sub in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                yield from _all_sparse_initializers(sub)


def sparse_to_dense(sparse) -> np.ndarray:
    """The dense array an ONNX ``SparseTensorProto`` stands for (what ONNX Runtime builds at session load).

    Args:
        sparse: a ``SparseTensorProto``: ``values`` [NNZ] (any dtype), ``indices`` int64 either [NNZ] (linear
            indices into the row-major dense tensor) or [NNZ, rank] (coordinates), ``dims`` the dense shape
            (ONNX IR spec, ``onnx/onnx.proto`` ``SparseTensorProto``).

    Returns:
        an array of shape ``dims`` and the values' dtype, zero where no value is stored.

    Raises:
        ValueError: indices that do not fit ``dims`` or do not match the number of values.
    """
    from onnx import numpy_helper

    values = numpy_helper.to_array(sparse.values).reshape(-1)
    dims = tuple(int(d) for d in sparse.dims)
    size = int(np.prod(dims)) if dims else 1
    dense = np.zeros(size, dtype=values.dtype)
    if values.size:
        idx = numpy_helper.to_array(sparse.indices).astype(np.int64)
        if idx.ndim == 2:
            if idx.shape != (values.size, len(dims)):
                raise ValueError(f"sparse initializer {sparse.values.name}: indices {idx.shape} do not match "
                                 f"{values.size} values of rank {len(dims)}")
            idx = np.ravel_multi_index(tuple(idx.T), dims)
        if idx.shape != (values.size,) or idx.min() < 0 or idx.max() >= size:
            raise ValueError(f"sparse initializer {sparse.values.name}: indices do not fit the dense shape {dims}")
        dense[idx] = values
    return dense.reshape(dims)


def _sparse_stored_bytes(sparse) -> int:
    """Bytes a ``SparseTensorProto`` stores: its values and its indices (the dense shape is a few ints)."""
    from onnx import numpy_helper

    return sum(_stored_bytes(t, numpy_helper.to_array(t)) for t in (sparse.values, sparse.indices) if t.dims)


def _nnz(sparse) -> int:
    return int(np.prod(sparse.values.dims)) if sparse.values.dims else 0


def _attr(node, name: str, default):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _stored_bytes(tensor, array: np.ndarray) -> int:
    return len(tensor.raw_data) if tensor.HasField("raw_data") else int(array.nbytes)


def _dtype_name(tensor) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).name if tensor.data_type not in (
        onnx.TensorProto.INT4, onnx.TensorProto.UINT4) else ("int4" if tensor.data_type == onnx.TensorProto.INT4 else "uint4")


def _classify(names: list[str]) -> str:
    """Layer type from names, the initializer's own name first (see module docstring)."""
    for name in names:
        for layer_type, rule in _NAME_RULES:
            if rule.search(name):
                return layer_type
    return "other"


def _unpack_bits(packed: np.ndarray, bits: int) -> np.ndarray:
    """Unpack ``bits``-bit unsigned values stored low bits first along the last axis of a uint8 array."""
    packed = np.asarray(packed, dtype=np.uint8)
    if bits == 8:
        return packed.astype(np.int32)
    per = 8 // bits
    shifts = np.arange(per, dtype=np.uint8) * bits
    vals = (packed[..., None] >> shifts) & np.uint8((1 << bits) - 1)
    return vals.reshape(*packed.shape[:-1], packed.shape[-1] * per).astype(np.int32)


def _expand_blocks(values: np.ndarray, shape: tuple[int, ...], axis: int, block: int) -> np.ndarray:
    """Broadcast per-block ``values`` (block ``block`` along ``axis``) to ``shape``."""
    return np.repeat(values, block, axis=axis).take(range(shape[axis]), axis=axis)


def _broadcast_qparam(p: np.ndarray | None, shape: tuple[int, ...], axis: int, block: int, default: float) -> np.ndarray:
    """Per-tensor, per-axis or blocked quantization parameter broadcast to ``shape`` (ONNX DequantizeLinear rules)."""
    if p is None:
        return np.asarray(default)
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    axis = axis % len(shape)
    if block > 0:
        return _expand_blocks(p, shape, axis, block)
    view = [1] * len(shape)
    view[axis] = p.size
    return p.reshape(view)


def _to_number(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float64) if array.dtype.kind == "f" else array.astype(np.int64)


def dequantize_weight(op_type: str, node, arrays: list[np.ndarray | None]) -> np.ndarray:
    """The float weight a quantized op computes with, from its stored inputs (rules in the module docstring).

    Args:
        op_type: ``"DequantizeLinear"``, ``"MatMulInteger"``, ``"DynamicQuantizeMatMul"``,
            ``"MatMulIntegerToFloat"``, ``"MatMulNBits"`` or ``"GatherBlockQuantized"``.
        node: the ONNX node (attributes are read from it).
        arrays: the node's inputs as arrays (``None`` when absent or not an initializer).

    Returns:
        float64 weights: ``[K, N]`` for the MatMul family, ``[N, K]`` for MatMulNBits (its stored orientation),
        the data's shape for DequantizeLinear/GatherBlockQuantized. For ``MatMulInteger`` the integer weight
        ``B - b_zero_point`` (its scale lives in a separate ``Mul``).

    Raises:
        ValueError: unsupported op type or inconsistent shapes.
    """
    if op_type == "DequantizeLinear":
        x, scale, zp = (arrays + [None, None])[:3]
        x = _to_number(x)
        axis, block = int(_attr(node, "axis", 1)), int(_attr(node, "block_size", 0))
        s = _broadcast_qparam(scale, x.shape, axis, block, 1.0)
        z = _broadcast_qparam(None if zp is None else _to_number(zp), x.shape, axis, block, 0)
        return (x - z) * s
    if op_type in ("MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"):
        if op_type == "MatMulInteger":
            b, scale, zp = arrays[1], None, (arrays + [None] * 4)[3]
        elif op_type == "DynamicQuantizeMatMul":
            b, scale, zp = arrays[1], arrays[2], (arrays + [None] * 4)[3]
        else:
            b, scale, zp = arrays[1], arrays[3], (arrays + [None] * 6)[5]
        b = _to_number(b)
        z = _broadcast_qparam(None if zp is None else _to_number(zp), b.shape, -1, 0, 0)
        s = _broadcast_qparam(scale, b.shape, -1, 0, 1.0)
        return (b - z) * s
    if op_type == "MatMulNBits":
        K, N = int(_attr(node, "K", 0)), int(_attr(node, "N", 0))
        bits, block = int(_attr(node, "bits", 4)), int(_attr(node, "block_size", 0))
        k_blocks = -(-K // block)
        q = _unpack_bits(arrays[1].reshape(N, -1), bits)[:, :K]
        scales = np.asarray(arrays[2], dtype=np.float64).reshape(N, k_blocks)
        zp = (arrays + [None] * 4)[3]
        if zp is None:
            zps = np.full((N, k_blocks), 2 ** (bits - 1), dtype=np.float64)
        elif zp.dtype == np.uint8:
            zps = _unpack_bits(zp.reshape(N, -1), bits)[:, :k_blocks].astype(np.float64)
        else:
            zps = np.asarray(zp, dtype=np.float64).reshape(N, k_blocks)
        full = (N, K)
        return (q - _expand_blocks(zps, full, 1, block)) * _expand_blocks(scales, full, 1, block)
    if op_type == "GatherBlockQuantized":
        data, scales = arrays[0], arrays[2]
        zp = (arrays + [None] * 4)[3]
        bits = int(_attr(node, "bits", 4))
        axis, block = int(_attr(node, "quantize_axis", 1)), int(_attr(node, "block_size", 128))
        if data.dtype == np.uint8 and bits < 8:
            q = _unpack_bits(data, bits)
            default = 2 ** (bits - 1)
            if zp is not None and zp.dtype == np.uint8:
                zp = _unpack_bits(zp, bits)[..., : scales.shape[-1]]
        else:
            q, default = _to_number(data), 0
        q = q.astype(np.float64)
        axis = axis % q.ndim
        s = _expand_blocks(np.asarray(scales, dtype=np.float64), q.shape, axis, block)
        z = default if zp is None else _expand_blocks(_to_number(zp), q.shape, axis, block)
        return (q - z) * s
    raise ValueError(f"unsupported quantized op {op_type}")


def load_inventory(onnx_dir: Path) -> Inventory:
    """Read ``onnx_dir/model.onnx`` (with external data) and sort its initializers (see ``Inventory``).

    Raises:
        InputError: no ``model.onnx`` in ``onnx_dir``.
    """
    import onnx
    from onnx import numpy_helper

    path = _model_path(onnx_dir)
    model = onnx.load(str(path), load_external_data=True)
    nodes = list(_all_nodes(model.graph))
    inits = {t.name: t for t in _all_initializers(model.graph)}
    sparse = {st.values.name: st for st in _all_sparse_initializers(model.graph)}
    for name, st in sparse.items():
        inits.setdefault(name, st.values)  # the values tensor carries the name and the dtype
    consumers: dict[str, list] = defaultdict(list)
    for node in nodes:
        for slot, name in enumerate(node.input):
            if name:
                consumers[name].append((node, slot))
    inv = Inventory(model_path=path)
    for node in nodes:
        if node.op_type == "Constant":
            inv.constant_nodes["count"] += 1
            for a in node.attribute:
                if a.name == "value":
                    inv.constant_nodes["elements"] += int(np.prod(a.t.dims)) if a.t.dims else 1

    def reach(name: str) -> tuple[list[str], list[tuple]]:
        """Names along pass-through chains from ``name`` and the first non-pass-through (node, slot) uses."""
        seen, names, uses, todo = {name}, [], [], [name]
        while todo:
            cur = todo.pop()
            for node, slot in consumers.get(cur, []):
                names.append(node.name)
                if node.op_type in _PASS_THROUGH and slot == 0:
                    for out in node.output:
                        names.append(out)
                        if out not in seen:
                            seen.add(out)
                            todo.append(out)
                else:
                    uses.append((node, slot))
        return names, uses

    arrays_cache: dict[str, np.ndarray] = {}

    def array(name: str) -> np.ndarray | None:
        if name not in inits:
            return None
        if name not in arrays_cache:
            arrays_cache[name] = sparse_to_dense(sparse[name]) if name in sparse else numpy_helper.to_array(inits[name])
        return arrays_cache[name]

    def stored(name: str, tensor, arr: np.ndarray) -> int:
        return _sparse_stored_bytes(sparse[name]) if name in sparse else _stored_bytes(tensor, arr)

    scale_of_quantized = {n[: -len("_quantized")] + "_scale" for n in inits if n.endswith("_quantized")}
    embed_users, head_users = set(), set()
    for name, tensor in inits.items():
        names, uses = reach(name)
        arr = array(name)
        direct = consumers.get(name, [])
        is_meta = bool(direct) and all(slot in _META_SLOTS.get(n.op_type, ()) for n, slot in direct)
        if is_meta or name in scale_of_quantized:
            inv.metadata_bytes[_dtype_name(tensor)] += stored(name, tensor, arr)
            arrays_cache.pop(name, None)
            continue
        quant_use = next(((n, s) for n, s in direct if _WEIGHT_SLOT.get(n.op_type) == s), None)
        if quant_use is None and (arr.dtype.kind != "f" or arr.size <= 1):
            inv.constants["tensors"] += 1
            inv.constants["elements"] += int(arr.size)
            inv.constants["bytes"] += stored(name, tensor, arr)
            arrays_cache.pop(name, None)
            continue
        if quant_use is not None:
            qnode = quant_use[0]
            weights = dequantize_weight(qnode.op_type, qnode, [array(i) if i else None for i in qnode.input])
            quant = qnode.op_type
            dtype = f"uint{int(_attr(qnode, 'bits', 4))}" if qnode.op_type == "MatMulNBits" else _dtype_name(tensor)
            if qnode.op_type == "GatherBlockQuantized" and arr.dtype == np.uint8 and int(_attr(qnode, "bits", 4)) < 8:
                dtype = f"uint{int(_attr(qnode, 'bits', 4))}"
        else:
            weights, quant, dtype = arr, None, _dtype_name(tensor)
        all_names = [name, *names]
        layer_type = _classify(all_names)
        idx = next((int(m.group(1)) for m in (_LAYER_INDEX.search(n) for n in all_names) if m), None)
        inv.params.append(ParamTensor(name, layer_type, idx, int(weights.size), int(np.count_nonzero(weights == 0)),
                                      stored(name, tensor, arr), dtype, quant,
                                      sparse_nnz=_nnz(sparse[name]) if name in sparse else None))
        if layer_type == "embed_lm_head":
            joined = " ".join(all_names)
            if "embed_tokens" in joined or any(n.op_type in ("Gather", "GatherBlockQuantized") for n, _ in uses):
                embed_users.add(name)
            if "lm_head" in joined:
                head_users.add(name)
        for n in [name, *(i for u, _ in direct for i in u.input)]:
            arrays_cache.pop(n, None)
        del weights
    inv.tied_embedding = bool(embed_users & head_users)
    return inv


SPARSE_INITIALIZER_NOTE = ("sparse_initializer tensors are counted at their dense shape (params) with their stored "
                           "values (nnz); ONNX Runtime densifies them when it loads the session, so they save bytes on "
                           "disk and in the download, not memory or latency")


def sparse_initializer_summary(inventory: Inventory) -> dict | None:
    """The parameter tensors stored as ONNX ``sparse_initializer`` (module docstring), or ``None`` without any.

    Returns:
        ``{"tensors", "params" (dense elements), "nnz" (stored values), "stored_bytes" (values + indices),
        "dense_bytes_at_load" (what ONNX Runtime allocates for them: params x element size), "names" (first 20),
        "note"}``.
    """
    sp = [p for p in inventory.params if p.sparse_nnz is not None]
    if not sp:
        return None
    item = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "int16": 2, "uint16": 2}
    return {"tensors": len(sp), "params": sum(p.params for p in sp), "nnz": sum(p.sparse_nnz for p in sp),
            "stored_bytes": sum(p.stored_bytes for p in sp),
            "dense_bytes_at_load": sum(p.params * item.get(p.dtype, 1) for p in sp),
            "names": [p.name for p in sp][:20], "note": SPARSE_INITIALIZER_NOTE}


def _fraction(zeros: int, params: int) -> float | None:
    return zeros / params if params else None


def onnx_sparsity(onnx_dir: Path, claimed: float | None, *, inventory: Inventory | None = None,
                  tolerance_pp: float = 1.0) -> dict:
    """Sparsity actually present in the artifact's weights.

    Args:
        onnx_dir: optimum export directory holding ``model.onnx`` (+ external data).
        claimed: the candidate's claimed sparsity over the pruned linears (fraction), or ``None``.
        inventory: a ``load_inventory`` result to reuse (avoids reading the model twice).
        tolerance_pp: deviation from the claim (percentage points) above which a linear is listed in
            ``linears_off_claim``.

    Returns:
        ``{"claimed", "measured_pruned_linears", "measured_all_params", "per_layer_type": {type: {"params",
        "zeros", "sparsity"}}, "quantized", "tied_embedding", "linears_off_claim", "n_linears_off_claim",
        "method"}``; sparsities are fractions of parameters exactly 0 after dequantization. When the graph stores
        parameters as ``sparse_initializer``, also ``"sparse_initializers"`` (:func:`sparse_initializer_summary`),
        and the method says how they were counted; their implicit zeros are zeros.

    Raises:
        InputError: no ``model.onnx`` in ``onnx_dir``.
    """
    inv = inventory or load_inventory(onnx_dir)
    per = {t: {"params": 0, "zeros": 0} for t in LAYER_TYPES}
    for p in inv.params:
        per[p.layer_type]["params"] += p.params
        per[p.layer_type]["zeros"] += p.zeros
    for d in per.values():
        d["sparsity"] = _fraction(d["zeros"], d["params"])
    lin_p = sum(per[t]["params"] for t in PRUNED_LINEAR_TYPES)
    lin_z = sum(per[t]["zeros"] for t in PRUNED_LINEAR_TYPES)
    all_p, all_z = sum(p.params for p in inv.params), sum(p.zeros for p in inv.params)
    off = []
    if claimed is not None:
        for p in inv.params:
            if p.layer_type in PRUNED_LINEAR_TYPES and abs(p.zeros / p.params - claimed) * 100 > tolerance_pp:
                off.append({"tensor": p.name, "layer": p.layer, "layer_type": p.layer_type, "sparsity": p.zeros / p.params})
    out = {
        "claimed": claimed,
        "measured_pruned_linears": _fraction(lin_z, lin_p),
        "measured_all_params": _fraction(all_z, all_p),
        "params_pruned_linears": lin_p,
        "params_all": all_p,
        "per_layer_type": per,
        "quantized": any(p.quantization for p in inv.params),
        "tied_embedding": inv.tied_embedding,
        "linears_off_claim": off[:20],
        "n_linears_off_claim": len(off),
        "method": ("fraction of weights exactly 0 in the ONNX initializers of " + inv.model_path.name
                   + " (quantized weights dequantized: (q - zero_point) * scale); pruned linears = q/k/v/o/gate/up/down "
                   "projections of the decoder layers; all params = every stored float tensor with >1 element and every "
                   "quantized weight, each stored tensor counted once (tied embeddings once); layers found from tensor and "
                   "consumer node names"),
    }
    sparse = sparse_initializer_summary(inv)
    if sparse is not None:  # only then: reports of graphs without sparse initializers keep their fields
        out["sparse_initializers"] = sparse
        out["method"] += "; " + SPARSE_INITIALIZER_NOTE
    return out


def effective_vs_dense(candidate: dict, dense: dict) -> dict:
    """Sparsity relative to the dense model: weights of the dense model that are zero *or removed* in the candidate.

    For unstructured pruning this equals the measured sparsity; for structured pruning (smaller shapes, few
    zeros) it is the removed fraction, so a claim is comparable either way.

    Args:
        candidate, dense: ``onnx_sparsity`` results.

    Returns:
        ``{"pruned_linears", "all_params"}``: ``1 - nonzeros(candidate) / params(dense)`` (fractions).
    """
    def eff(c_params: int, c_zeros: int, d_params: int) -> float | None:
        return 1 - (c_params - c_zeros) / d_params if d_params else None

    lin = [t for t in PRUNED_LINEAR_TYPES]
    c_lp = sum(candidate["per_layer_type"][t]["params"] for t in lin)
    c_lz = sum(candidate["per_layer_type"][t]["zeros"] for t in lin)
    d_lp = sum(dense["per_layer_type"][t]["params"] for t in lin)
    c_ap = sum(v["params"] for v in candidate["per_layer_type"].values())
    c_az = sum(v["zeros"] for v in candidate["per_layer_type"].values())
    d_ap = sum(v["params"] for v in dense["per_layer_type"].values())
    return {"pruned_linears": eff(c_lp, c_lz, d_lp), "all_params": eff(c_ap, c_az, d_ap)}


def _compressed_sizes(files: list[Path], zstd_level: int, gzip_level: int | None) -> tuple[int, int | None]:
    """Bytes after zstd and (when ``gzip_level`` is given) after gzip of the files concatenated in order (streamed in
    one pass over the files, nothing written; ``None`` for a gzip that was not asked for).

    The compressors run in their own threads (both release the GIL).
    """
    from concurrent.futures import ThreadPoolExecutor

    import zstandard

    class _Count:
        def __init__(self):
            self.n = 0

        def write(self, b):
            self.n += len(b)
            return len(b)

        def flush(self):
            pass

    total = sum(p.stat().st_size for p in files)  # a known size selects the same parameters as one-shot `zstd -#`

    def run(kind: str) -> int:
        count = _Count()
        if kind == "zstd":
            sink = zstandard.ZstdCompressor(level=zstd_level).stream_writer(count, size=total, closefd=False)
        else:
            sink = gzip.GzipFile(fileobj=count, mode="wb", compresslevel=gzip_level, mtime=0)
        for path in files:
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    sink.write(chunk)
        if kind == "zstd":
            sink.flush(zstandard.FLUSH_FRAME)
        else:
            sink.close()
        return count.n

    if gzip_level is None:
        return run("zstd"), None
    with ThreadPoolExecutor(max_workers=2) as pool:
        z, g = pool.map(run, ["zstd", "gzip"])
    return z, g


def optimized_op_types(model_path: Path, session=None) -> dict:
    """Op types of the graph ONNX Runtime runs, read from the optimized model it saves.

    Args:
        model_path: ``model.onnx``.
        session: a ``gate.runtime.ort_decoder.SessionConfig`` (its optimization level and providers are used);
            default: CPU, ``ORT_ENABLE_ALL``.

    Returns:
        ``{"graph_optimization", "providers", "op_types": {op: count}, "quantized_ops": {op: count},
        "static_cost": ...}``; ``static_cost`` is :func:`gate.measure.cost.static_cost` of the optimized graph
        (FLOPs and weight bytes per token, the kernels).
    """
    import onnx
    import onnxruntime as ort

    from gate.runtime.ort_decoder import SessionConfig

    session = session or SessionConfig()
    with tempfile.TemporaryDirectory(prefix="prunegate-opt-") as tmp:
        out = Path(tmp) / "optimized.onnx"
        so = session.session_options()
        so.optimized_model_filepath = str(out)
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name", "optimized.onnx.data")
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        ort.InferenceSession(str(model_path), so, providers=list(session.providers))
        graph = onnx.load(str(out), load_external_data=False).graph
        from gate.measure.cost import static_cost

        cost = static_cost(graph)
        counts: dict[str, int] = defaultdict(int)
        for node in _all_nodes(graph):
            counts[(node.domain + "." if node.domain and node.domain != "ai.onnx" else "") + node.op_type] += 1
    quant_ops = ("MatMulNBits", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QLinearMatMul",
                 "GatherBlockQuantized", "DequantizeLinear", "DynamicQuantizeLinear")
    return {
        "graph_optimization": session.graph_optimization,
        "providers": list(session.providers),
        "op_types": dict(sorted(counts.items())),
        "quantized_ops": {k: v for k, v in sorted(counts.items()) if k.split(".")[-1] in quant_ops},
        "static_cost": cost,
    }


def size_accounting(onnx_dir: Path, *, inventory: Inventory | None = None, session=None,
                    zstd_level: int = ZSTD_LEVEL, gzip_level: int | None = GZIP_LEVEL) -> dict:
    """Size of the artifact as shipped and as downloaded, and what its bytes are.

    Args:
        onnx_dir: optimum export directory.
        inventory: a ``load_inventory`` result to reuse.
        session: ``SessionConfig`` whose optimization level/providers give the optimized graph's op types
            (use the benchmark's, so the ops counted are the ops timed).
        zstd_level, gzip_level: compression levels (recorded); ``gzip_level=None`` (the default) skips gzip
            (``bytes_gzip`` is then ``None``).

    Returns:
        ``{"bytes_on_disk", "bytes_zstd", "bytes_gzip", "params", "zero_fraction", "bytes_per_param",
        "dtypes": {dtype: {"tensors", "params", "bytes", "layer_types"}}, "quantization_metadata_bytes",
        "constants", "op_types": {...}, "compression_settings": {...}, "files", "seconds"}``; bytes are
        ``st_size`` of the model files (graph + external data, ``exporters.artifact.model_files``);
        compressed bytes are of those files concatenated in sorted path order. When the graph stores parameters
        as ``sparse_initializer``, also ``"sparse_initializers"`` (:func:`sparse_initializer_summary`: bytes on disk
        are the sparse form, memory at load the dense one).

    Raises:
        InputError: no ``model.onnx`` in ``onnx_dir``.
    """
    import zstandard

    from exporters.artifact import model_files

    t0 = time.perf_counter()
    onnx_dir = Path(onnx_dir)
    path = _model_path(onnx_dir)
    inv = inventory or load_inventory(onnx_dir)
    files = model_files(onnx_dir)
    on_disk = sum(p.stat().st_size for p in files)
    # the compressed sizes (one streaming pass over the files) and the ORT-optimized graph (a session) are
    # independent and both release the GIL: run side by side
    from concurrent.futures import ThreadPoolExecutor

    def timed(fn, *args):
        t = time.perf_counter()
        return fn(*args), time.perf_counter() - t

    with ThreadPoolExecutor(max_workers=2) as pool:
        compressed = pool.submit(timed, _compressed_sizes, files, zstd_level, gzip_level)
        optimized = pool.submit(timed, optimized_op_types, path, session)
        (zstd_bytes, gzip_bytes), compress_s = compressed.result()
        ops, ops_s = optimized.result()
    dtypes: dict[str, dict] = {}
    for p in inv.params:
        d = dtypes.setdefault(p.dtype, {"tensors": 0, "params": 0, "bytes": 0, "layer_types": set()})
        d["tensors"] += 1
        d["params"] += p.params
        d["bytes"] += p.stored_bytes
        d["layer_types"].add(p.layer_type)
    for d in dtypes.values():
        d["layer_types"] = sorted(d["layer_types"])
    params = sum(p.params for p in inv.params)
    zeros = sum(p.zeros for p in inv.params)
    ops["seconds"] = ops_s
    out = {
        "bytes_on_disk": on_disk,
        "bytes_zstd": zstd_bytes,
        "bytes_gzip": gzip_bytes,
        "zstd_ratio": on_disk / zstd_bytes if zstd_bytes else None,
        "params": params,
        "zero_fraction": _fraction(zeros, params),
        "bytes_per_param": on_disk / params if params else None,
        "dtypes": dict(sorted(dtypes.items())),
        "quantization_metadata_bytes": dict(inv.metadata_bytes),
        "constants": {"initializers": dict(inv.constants), "constant_nodes": dict(inv.constant_nodes)},
        "op_types": ops,
        "compression_settings": {
            "zstd": {"library": f"zstandard {zstandard.__version__}", "level": zstd_level, "threads": 1},
            "gzip": ({"library": f"python gzip (zlib {zlib.ZLIB_RUNTIME_VERSION})", "level": gzip_level, "mtime": 0}
                     if gzip_level is not None else {"skipped": "gzip is opt-in (gzip_level); zstd is the download size"}),
            "input": "the model files concatenated in sorted path order",
            "seconds": compress_s,
        },
        "files": [str(p) for p in files],
    }
    sparse = sparse_initializer_summary(inv)
    if sparse is not None:
        out["sparse_initializers"] = sparse
    out["seconds"] = time.perf_counter() - t0
    return out


def verify_user_export(onnx_dir: Path, tokenizer, dense_model=None, *, atol: float | None = None,
                       rtol: float | None = None, session=None) -> dict:
    """``export.verify`` of an ONNX export prunegate did not make (``--candidate checkpoint:DIR`` of an ONNX dir).

    No PyTorch model of the candidate exists, so its export cannot be compared with its source. What is checked,
    on :data:`exporters.verify.VERIFY_PROMPT` (the prompt every export is verified on):

    * the graph's two paths agree: logits of the whole sequence in one prefill vs prefill of all but the last 4
      tokens then 4 single-token decode steps with the KV cache (the path the latency bench and scoring use),
      within ``atol + rtol * max|logit|`` (:data:`exporters.verify.VERIFY_ATOL`/``VERIFY_RTOL``) and with equal
      next-token argmax at every position;
    * with ``dense_model``, the logits have the dense model's vocabulary size (the candidate is scored with the
      dense tokenizer), are finite, and their difference from the dense PyTorch model's logits on the same
      prompt is recorded (``dense_max_abs_logit_diff``, ``dense_argmax_agreement``). A compressed model is
      expected to differ from dense, so that difference is reported, not judged (the bias and perplexity checks
      judge the drift).

    Args:
        onnx_dir: directory with ``model.onnx`` (an optimum ``text-generation-with-past`` export).
        tokenizer: the dense model's tokenizer.
        dense_model: the dense PyTorch causal LM (eval mode), or ``None`` when there is none.
        atol, rtol: tolerances (default those of :func:`exporters.verify.verify_export`).
        session: ``gate.runtime.ort_decoder.SessionConfig`` (default CPU).

    Returns:
        ``{"passed", "max_abs_logit_diff" (prefill vs cached path, logit units), "tolerance", "atol", "rtol",
        "argmax_agreement" (between the paths), "n_tokens", "reference", "method", "note",
        "candidate_vocab"}`` and, with ``dense_model``, ``"dense_vocab"``, ``"dense_max_abs_logit_diff"``,
        ``"dense_argmax_agreement"`` (``None`` when the vocabularies differ).

    Raises:
        ValueError: the graph is not a decoder export with a KV cache (:class:`gate.runtime.ort_decoder.OrtDecoder`).
    """
    from exporters.verify import (
        VERIFY_ATOL,
        VERIFY_PROMPT,
        VERIFY_RTOL,
        prefill_and_cached_logits,
    )
    from gate.runtime.ort_decoder import OrtDecoder, SessionConfig

    atol = VERIFY_ATOL if atol is None else atol
    rtol = VERIFY_RTOL if rtol is None else rtol
    ids = np.asarray(tokenizer(VERIFY_PROMPT, return_tensors="np").input_ids, dtype=np.int64)
    dec = OrtDecoder(_model_path(onnx_dir), session or SessionConfig())
    full, cached = prefill_and_cached_logits(dec, ids)
    finite = bool(np.isfinite(full).all() and np.isfinite(cached).all())
    diff = float(np.abs(full - cached).max()) if finite else float("inf")
    tol = atol + rtol * (float(np.abs(full).max()) if finite else 0.0)
    agree = float(np.mean(full.argmax(-1) == cached.argmax(-1)))
    out = {"max_abs_logit_diff": diff, "tolerance": tol, "atol": atol, "rtol": rtol, "argmax_agreement": agree,
           "n_tokens": int(ids.shape[1]), "candidate_vocab": int(full.shape[-1]), "finite": finite}
    passed = finite and diff <= tol and agree == 1.0
    problems = [] if finite else ["non-finite logits"]
    if diff > tol or agree < 1.0:
        problems.append(f"the cached decode path disagrees with the prefill path (max |Δlogit| {diff:.3g} > {tol:.3g} "
                        f"or argmax agreement {agree:.3f} < 1)")
    if dense_model is not None:
        import torch

        with torch.no_grad():
            ref = dense_model(torch.from_numpy(ids)).logits[0].float().numpy()
        out["dense_vocab"] = int(ref.shape[-1])
        same_vocab = ref.shape == full.shape
        out["dense_max_abs_logit_diff"] = float(np.abs(full - ref).max()) if same_vocab and finite else None
        out["dense_argmax_agreement"] = float(np.mean(full.argmax(-1) == ref.argmax(-1))) if same_vocab else None
        if not same_vocab:
            passed = False
            problems.append(f"logits of {full.shape[-1]} tokens, the dense model has {ref.shape[-1]}")
    out["passed"] = bool(passed)
    out["reference"] = "the candidate's own prefill path" + (" and the dense PyTorch model" if dense_model is not None else "")
    out["method"] = ("user-supplied ONNX export (no PyTorch model of it): ONNX Runtime prefill vs KV-cache decode logits "
                     "of the candidate on the verification prompt" + ("; vocabulary and logits compared with the dense "
                                                                      "PyTorch model on the same prompt (recorded, not "
                                                                      "judged: compression moves logits)"
                                                                      if dense_model is not None else ""))
    out["note"] = "; ".join(problems) if problems else "graph paths agree" + (
        f"; vs dense: max |Δlogit| {out['dense_max_abs_logit_diff']:.3g}, argmax agreement "
        f"{out['dense_argmax_agreement']:.3f}" if dense_model is not None and out.get("dense_max_abs_logit_diff") is not None else "")
    return out
