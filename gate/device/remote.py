"""Host side of a remote device run: probe the device, copy the runner bundle and the artifacts, score BBQ and
run the benchmark child there, and bring the results back.

Division of work: the host tokenizes (the same calls as :mod:`gate.runtime.bbq_scoring`) and sends token ids; the
device runs ONNX Runtime (``runner.py score``: the same ``PrefixCache``/option log-likelihood code as a local
run) and the benchmark child (:mod:`gate.runtime.bench_child`, unchanged) with its own Python. The host then builds the
same :class:`gate.runtime.bbq_scoring.ItemScore` objects a local run builds, so everything downstream (metrics,
paired statistics, policy) is unchanged.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from exporters.digest import sha256_file, sha256_json
from gate.device.ssh import (
    INSTALL_HINT,
    DeviceError,
    SshDevice,
    SshOptions,
    device_from_url,
)
from gate.runtime.bbq_scoring import (
    DEFAULT_PREFIX_CACHE_ENTRIES,
    FROM_TOKENIZER,
    ItemScore,
    _argmax,
    build_letter_prompt,
    check_items_fit,
    check_scoring_options,
    letter_prompt_ids,
    loglik_token_ids,
    resolve_bos_id,
)
from gate.runtime.errors import InputError
from gate.runtime.ort_decoder import SessionConfig

_GATE = Path(__file__).resolve().parent.parent


def bundle_files() -> dict[str, Path]:
    """The runner bundle copied to the device: device path (relative to the bundle directory) -> local file.

    Only modules that import nothing beyond numpy, onnxruntime and the standard library may be listed.
    """
    from gate.measure.harness import CHILD_SCRIPT

    runtime = _GATE / "runtime"
    files = {"runner.py": runtime / "device_runner.py", "bench_child.py": Path(CHILD_SCRIPT),
             "gate/__init__.py": _GATE / "__init__.py"}
    files.update({f"gate/runtime/{f.name}": f for f in sorted(runtime.glob("*.py"))})
    return files


@dataclass(frozen=True)
class DeviceSpec:
    """A device to run on: its ``ssh://`` URL, how to connect, and where the URL came from (for messages)."""

    url: str
    options: SshOptions = field(default_factory=SshOptions)
    source: str = "--device"


def _walk_tensors(graph):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _walk_tensors(attr.g)
            for g in attr.graphs:
                yield from _walk_tensors(g)


def artifact_files(onnx_dir: Path, model_name: str = "model.onnx") -> list[Path]:
    """The files ONNX Runtime needs to load ``onnx_dir/model_name``: the graph and its external-data files.

    Args:
        onnx_dir: an exported artifact directory.
        model_name: the graph file.

    Returns:
        ``model.onnx`` followed by each external-data file it references (``external_data`` ``location``
        entries of its tensors, subgraphs included), sorted.

    Raises:
        InputError: the graph file is missing or references a file that does not exist.
    """
    import onnx

    model_path = onnx_dir / model_name
    if not model_path.is_file():
        raise InputError(f"artifact {onnx_dir}: no {model_name}; export the model first")
    model = onnx.load(str(model_path), load_external_data=False)
    locations = set()
    for t in _walk_tensors(model.graph):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            locations.update(e.value for e in t.external_data if e.key == "location")
    files = [model_path]
    for loc in sorted(locations):
        p = onnx_dir / loc
        if not p.is_file():
            raise InputError(f"artifact {onnx_dir}: {model_name} references external data {loc!r}, which is missing; re-export")
        files.append(p)
    return files


def loglik_runs(tokenizer, item, bos_id: int | None) -> list[dict]:
    """Token ids of one item in ``loglik`` mode, the same ids a local run scores
    (:func:`gate.runtime.bbq_scoring.loglik_token_ids`; ``bos_id``: the model's BOS rule)."""
    prompt_ids, option_ids = loglik_token_ids(tokenizer, item, bos_id)
    return [{"ids": list(prompt_ids), "options": [list(o) for o in option_ids]}]


_CYCLIC_ORDERS = ((0, 1, 2), (1, 2, 0), (2, 0, 1))


def letter_runs(tokenizer, item, permute_options: bool, bos_id: int | None) -> tuple[list[dict], tuple]:
    """Token ids of one item in ``letter`` mode (as :func:`gate.runtime.bbq_scoring._score_letter`, with the BOS
    rule ``bos_id``), and the orders shown."""
    orders = _CYCLIC_ORDERS if permute_options else _CYCLIC_ORDERS[:1]
    runs = []
    for order in orders:
        shown = [item.answers[o] for o in order]
        ids, letter_ids = letter_prompt_ids(tokenizer, build_letter_prompt(tokenizer, item.context, item.question, shown),
                                           bos_id)
        runs.append({"ids": list(ids), "next": list(letter_ids)})
    return runs, orders


def item_score(item, mode: str, runs: list[dict], results: list[dict], length_normalize: bool,
               orders: tuple = ()) -> ItemScore:
    """Combine the device's per-run values into the :class:`ItemScore` a local run produces.

    Args:
        item: the BBQ item.
        mode: ``"loglik"`` or ``"letter"``.
        runs: what was sent for the item (:func:`loglik_runs` / :func:`letter_runs`).
        results: the device's ``[{"values": [...], "reused": int}]``, one per run.
        length_normalize: ``loglik`` only, as in :func:`gate.runtime.bbq_scoring.score_items`.
        orders: ``letter`` only: the option order of each run.

    Returns:
        the item's score; same formulas as :mod:`gate.runtime.bbq_scoring` (sum of option-token log-probs, optionally
        divided by the token count; letter log-probs summed per original option with ``math.fsum``).
    """
    reused = sum(int(r["reused"]) for r in results)
    n_prompt = sum(len(r["ids"]) for r in runs)
    if mode == "loglik":
        ll = tuple(float(x) for x in results[0]["values"])
        n = tuple(len(o) for o in runs[0]["options"])
        score = tuple(x / k for x, k in zip(ll, n)) if length_normalize else ll
        return ItemScore(item.uid, ll, n, _argmax(score), score, n_prompt, reused)  # type: ignore[arg-type]
    parts: list[list[float]] = [[], [], []]
    for order, res in zip(orders, results):
        for position, original in enumerate(order):
            parts[original].append(float(res["values"][position]))
    ll = tuple(math.fsum(p) for p in parts)
    return ItemScore(item.uid, ll, (len(orders),) * 3, _argmax(ll), ll, n_prompt, reused)  # type: ignore[arg-type]


def _session_json(session: SessionConfig) -> dict:
    return {"providers": list(session.providers), "intra_op_threads": session.intra_op_threads,
            "graph_optimization": session.graph_optimization, "allow_spinning": session.allow_spinning,
            "provider_options": {k: dict(v) for k, v in getattr(session, "provider_options", {}).items()}}


class RemoteDevice:
    """A probed device: runs the bundle's runner and the benchmark child there over SSH.

    Create it with :meth:`open`; call :meth:`close` at the end (removes what was copied unless ``keep``).
    """

    def __init__(self, device: SshDevice, facts: dict, spec: DeviceSpec, log: Callable[[str], None]):
        self.device = device
        self.facts = facts
        self.spec = spec
        self.log = log
        self.copies: list[dict] = []
        self.scoring: list[dict] = []
        self._bundle_dir: str | None = None
        self._artifacts: dict[Path, str] = {}
        self._session = SessionConfig()

    # ---- setup
    @classmethod
    def open(cls, spec: DeviceSpec, log: Callable[[str], None] = print) -> RemoteDevice:
        """Connect, and check the device can run prunegate's runner (nothing is copied yet).

        Raises:
            InputError: a bad URL, host key, authentication or connection problem; the device lacks python3,
                numpy or onnxruntime (the message carries the install hint).
            DeviceError: the probe failed on the device.
        """
        device = device_from_url(spec.url, spec.options, log, option=spec.source)
        log(f"device: connecting to {device.target.url}")
        try:
            facts = cls._probe(device, spec)
        except BaseException:
            device.close()
            raise
        log(f"device: {facts['machine']}, {facts['cpu']}, Python {facts['python']}, onnxruntime {facts['onnxruntime']} "
            f"({', '.join(facts['onnxruntime_available_providers'])})")
        return cls(device, facts, spec, log)

    @staticmethod
    def _probe(device: SshDevice, spec: DeviceSpec) -> dict:
        source = (_GATE / "runtime" / "device_runner.py").read_text(encoding="utf-8")
        out = device.run_python(["-", "facts"], "probing the device", input_text=source)
        try:
            facts = json.loads(out.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            raise DeviceError(f"probing {device.target.url}: unexpected output {out[:200]!r}") from None
        if facts.get("missing"):
            names = " and ".join(sorted(facts["missing"]))
            first = next(iter(facts["missing"].values()))
            raise InputError(f"{spec.source} {device.target.url}: the device's Python ({spec.options.python}, "
                             f"{facts.get('python')}) cannot import {names} ({first}); {INSTALL_HINT}, or pass "
                             "--device-python PATH to an interpreter that has them")
        return facts

    def absolute(self, rel: str) -> str:
        """Absolute device path of ``rel`` under the working directory."""
        return str(PurePosixPath(self.facts["cwd"]) / self.device.remote_path(rel))

    def ensure_bundle(self) -> str:
        """Copy the runner bundle (content-addressed directory ``code/<digest>``); return its absolute path."""
        if self._bundle_dir is None:
            files = bundle_files()
            digest = sha256_json({rel: sha256_file(p) for rel, p in sorted(files.items())})[:16]
            rel_dir = f"code/{digest}"
            stats = self.device.sync([(p, f"{rel_dir}/{rel}") for rel, p in files.items()])
            self.copies.append({"what": "runner bundle", "dir": rel_dir, **stats})
            self._bundle_dir = self.absolute(rel_dir)
        return self._bundle_dir

    def ensure_artifact(self, onnx_dir: Path) -> str:
        """Copy an artifact's graph and external data (``artifacts/<digest>``); return the device's model path.

        The directory name is a digest of the files' names and SHA-256, so identical artifacts are stored once
        and a kept copy from an earlier run is reused.
        """
        onnx_dir = Path(onnx_dir).resolve()
        if onnx_dir not in self._artifacts:
            files = artifact_files(onnx_dir)
            digest = sha256_json({p.name: sha256_file(p) for p in files})[:16]
            rel_dir = f"artifacts/{digest}"
            stats = self.device.sync([(p, f"{rel_dir}/{p.name}") for p in files])
            self.copies.append({"what": str(onnx_dir), "dir": rel_dir, **stats})
            self._artifacts[onnx_dir] = self.absolute(f"{rel_dir}/{files[0].name}")
        return self._artifacts[onnx_dir]

    def close(self) -> bool:
        """Remove what this run copied to the device (unless ``keep``); never raises. Returns success."""
        try:
            return self.device.cleanup(extra_dirs=("code", "artifacts"))
        finally:
            self.device.close()

    def describe(self) -> dict:
        """JSON-ready record of the device and the transfers, for the report."""
        o = self.spec.options
        return {
            "transport": "ssh (system OpenSSH client)",
            "url": self.device.target.url,
            "source": self.spec.source,
            "measured_on_device": True,
            "note": "latency, memory, provider placement and BBQ scoring ran on this device with its own Python and "
                    "ONNX Runtime; the host only tokenized and compared",
            "facts": {k: v for k, v in self.facts.items() if k != "cpuinfo_text"},
            "options": {"python": o.python, "remote_dir": o.remote_dir, "keep": o.keep,
                        "host_key_checking": "accept-new (trust on first use)" if o.trust_new_host else "strict",
                        "known_hosts": str(o.known_hosts) if o.known_hosts else None,
                        "identity_file": str(o.identity_file) if o.identity_file else None,
                        "connect_timeout_s": o.connect_timeout_s, "command_timeout_s": o.command_timeout_s},
            "copies": self.copies,
            "scoring": self.scoring,
        }

    def environment(self) -> dict:
        """The device's software/hardware facts in the shape of a benchmark protocol's ``environment``."""
        f = self.facts
        return {"measured_on": "device", "device_url": self.device.target.url, "python": f["python"],
                "executable": f["python_executable"], "onnxruntime": f["onnxruntime"], "numpy": f["numpy"],
                "available_providers": f["onnxruntime_available_providers"], "platform": f"{f['system']}-{f['kernel']}",
                "machine": f["machine"], "cpu": f["cpu"], "board": f["board"], "cpus_available": f["cpus_available"],
                "mem_total_bytes": f["mem_total_bytes"]}

    # ---- work
    def run_bench_child(self, name: str, request: dict, timeout_s: float) -> dict:
        """A ``gate.measure.harness`` child runner: run ``bench_child.py`` on the device with its Python.

        Args:
            name: variant name (messages).
            request: the child's request; ``model_path`` (or, in paired mode, each of ``model_paths``) is
                replaced by the device's copy.
            timeout_s: the child's wall-clock limit (enforced on the device and locally).

        Returns:
            the child's JSON result, with ``measured_on`` set to the device URL.

        Raises:
            InputError, DeviceError: see :mod:`gate.device.ssh`.
        """
        bundle = self.ensure_bundle()
        if "model_paths" in request:  # paired mode: two artifacts in one process
            req = {**request, "model_paths": [self.ensure_artifact(Path(p).parent) for p in request["model_paths"]]}
        else:
            req = {**request, "model_path": self.ensure_artifact(Path(request["model_path"]).parent)}
        cmd = self.device.python_command(["bench_child.py"], timeout_s=timeout_s, cwd=bundle)
        proc = self.device.run(cmd, f"benchmark of variant '{name}'", input_text=json.dumps(req),
                               timeout_s=timeout_s + self.device.options.connect_timeout_s + 30)
        try:
            result = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise DeviceError(f"benchmark of variant '{name}' on {self.device.target.url}: no valid JSON result "
                              f"(stdout began {proc.stdout[:120]!r})") from None
        result["measured_on"] = self.device.target.url
        return result

    def score(self, onnx_dir: Path, tokenizer, items: Sequence, session: SessionConfig,
              on_item: Callable[[int, ItemScore], None] | None = None, *, mode: str = "loglik",
              length_normalize: bool = False, permute_options: bool = False,
              prefix_cache_entries: int = DEFAULT_PREFIX_CACHE_ENTRIES, bos_id=FROM_TOKENIZER,
              context_length: int | None = None) -> tuple[list[ItemScore], float, float]:
        """Score BBQ items on the device; the remote counterpart of :func:`gate.runtime.bbq_scoring.score_items`.

        Items stream back one by one, so ``on_item`` sees each as soon as the device has scored it (an
        interrupted run keeps what arrived). Tokenizing stays on this host: ``bos_id`` and ``context_length``
        mean what they mean for :func:`gate.runtime.bbq_scoring.score_items` (items are checked against the
        context before anything is sent).

        Returns:
            ``(scores, host_seconds, device_seconds)``: one :class:`ItemScore` per item (equal to a local run's on
            the same ONNX Runtime build), the host's wall time (tokenizing, transfer, scoring), and the device's
            own scoring time.

        Raises:
            InputError: bad scoring options; an item longer than ``context_length``; connection problems.
            DeviceError: a failure on the device.
        """
        check_scoring_options(mode, length_normalize, permute_options)
        bos = resolve_bos_id(tokenizer, bos_id)
        if context_length is not None:
            check_items_fit(tokenizer, items, context_length, mode=mode, permute_options=permute_options, bos_id=bos)
        t0 = time.perf_counter()
        bundle = self.ensure_bundle()
        remote_model = self.ensure_artifact(onnx_dir)
        sent: list[tuple[list[dict], tuple]] = []
        for item in items:
            sent.append((loglik_runs(tokenizer, item, bos), ()) if mode == "loglik"
                        else letter_runs(tokenizer, item, permute_options, bos))
        request = {"model_path": remote_model, "session": _session_json(session),
                   "prefix_cache_entries": prefix_cache_entries, "items": [{"runs": runs} for runs, _ in sent]}
        scores: list[ItemScore | None] = [None] * len(items)
        done: dict = {}

        def on_line(line: str) -> None:
            msg = json.loads(line)
            if msg.get("done"):
                done.update(msg)
                return
            i = int(msg["i"])
            runs, orders = sent[i]
            s = item_score(items[i], mode, runs, msg["runs"], length_normalize, orders)
            scores[i] = s
            if on_item:
                on_item(i, s)

        cmd = self.device.python_command(["runner.py", "score"], timeout_s=self.device.options.command_timeout_s, cwd=bundle)
        self.device.stream(cmd, f"BBQ scoring on {self.device.target.url}", json.dumps(request), on_line)
        if not done or any(s is None for s in scores):
            raise DeviceError(f"BBQ scoring on {self.device.target.url} ended early: "
                              f"{sum(s is not None for s in scores)}/{len(items)} items came back")
        return scores, time.perf_counter() - t0, float(done["seconds"])  # type: ignore[return-value]

    def score_items(self, onnx_dir: Path, tokenizer, items: Sequence, on_item=None, *, mode: str = "loglik",
                    length_normalize: bool = False, permute_options: bool = False, bos_id=FROM_TOKENIZER,
                    context_length: int | None = None) -> tuple[list[ItemScore], float]:
        """Drop-in for :func:`gate.runtime.bbq_scoring.score_items` that scores on the device (see :meth:`score`).

        Returns:
            ``(scores, seconds)`` with the device's own scoring wall time in seconds; the host's time, transfer
            included, is recorded in :meth:`describe` under ``scoring``.
        """
        scores, host_s, device_s = self.score(onnx_dir, tokenizer, items, self._session, on_item, mode=mode,
                                              length_normalize=length_normalize, permute_options=permute_options,
                                              bos_id=bos_id, context_length=context_length)
        self.scoring.append({"artifact": str(onnx_dir), "items": len(items), "device_seconds": device_s,
                             "host_seconds_incl_transfer": host_s})
        return scores, device_s

    def use_session(self, session: SessionConfig) -> None:
        """The ONNX Runtime session configuration :meth:`score_items` uses (the gate's, from the profile)."""
        self._session = session

    def placement(self, onnx_dir: Path, session: SessionConfig, prompt_tokens: int = 8) -> dict:
        """:func:`gate.runtime.providers.op_placement` run on the device (one profiled prefill; not timed).

        Raises:
            InputError, DeviceError: see :mod:`gate.device.ssh`.
        """
        bundle = self.ensure_bundle()
        req = {"model_path": self.ensure_artifact(onnx_dir), "session": _session_json(session), "prompt_tokens": prompt_tokens}
        out = self.device.run_python(["runner.py", "placement"], f"operator placement on {self.device.target.url}",
                                     input_text=json.dumps(req), cwd=bundle)
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            raise DeviceError(f"operator placement on {self.device.target.url}: unexpected output {out[:200]!r}") from None
        result["measured_on"] = self.device.target.url
        return result
