"""Remote device runs over SSH, against a real OpenSSH server on loopback.

The session fixture starts ``sshd`` (as the current user, its own config in a temp dir: throwaway host and
client keys, ``ListenAddress 127.0.0.1``, a free port, ``UsePAM no``, ``StrictModes no``). The "device Python" is
a separate venv that can import only numpy and onnxruntime (linked from this venv, offline), which proves the
runner bundle needs nothing else. Skips, with the reason, when ``sshd`` is not installed
(``apt-get install openssh-server``).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gate.device.remote import DeviceSpec, RemoteDevice, bundle_files
from gate.device.ssh import (DeviceError, SshDevice, SshOptions, classify_connection_failure,
                             classify_remote_failure, parse_ssh_url, SshTarget)
from gate.runtime.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


# ---------------------------------------------------------------- unit tests (no server)

def test_parse_ssh_url():
    assert parse_ssh_url("ssh://pi@10.0.0.2:2222") == SshTarget("10.0.0.2", "pi", 2222)
    assert parse_ssh_url("ssh://board") == SshTarget("board", None, 22)
    t = parse_ssh_url("ssh://me@[::1]:2200/")
    assert (t.host, t.port) == ("::1", 2200) and t.url == "ssh://me@[::1]:2200"
    for bad, needle in [("http://x", "not an ssh:// URL"), ("ssh://x:99999", "port"), ("ssh://u:pw@x", "passwords"),
                        ("ssh://x/tmp", "path"), ("ssh://", "no host"), ("ssh://x:abc", "port")]:
        with pytest.raises(InputError, match=needle):
            parse_ssh_url(bad)


def test_failure_classification_is_one_line_and_actionable():
    t, o = SshTarget("h", "u", 2), SshOptions(known_hosts=Path("/k"))
    cases = {
        "Host key verification failed.": (InputError, "--device-trust-new-host"),
        "u@h: Permission denied (publickey).": (InputError, "--device-identity"),
        "ssh: connect to host h port 2: Connection refused": (InputError, "cannot connect"),
        "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@": (InputError, "CHANGED"),
        "kex_exchange_identification: weird": (DeviceError, "ssh failed"),
    }
    for stderr, (kind, needle) in cases.items():
        err = classify_connection_failure(t, o, stderr)
        assert isinstance(err, kind) and needle in str(err) and "\n" not in str(err), stderr
    remote = {
        (127, "sh: 1: exec: python3: not found"): (InputError, "no Python"),
        (124, ""): (DeviceError, "timed out"),
        (1, "OSError: [Errno 28] No space left on device"): (DeviceError, "disk"),
        (1, "Traceback...\nMemoryError"): (DeviceError, "out of memory"),
        (137, ""): (DeviceError, "out of memory"),
        (1, "Traceback\nValueError: boom"): (DeviceError, "ValueError: boom"),
    }
    for (rc, stderr), (kind, needle) in remote.items():
        err = classify_remote_failure("scoring", rc, stderr, "python3")
        assert isinstance(err, kind) and needle in str(err) and "\n" not in str(err), (rc, stderr)


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_bundle_imports_only_numpy_onnxruntime_and_stdlib():
    """Everything copied to the device may import only the stdlib, numpy, onnxruntime and the bundle itself."""
    allowed = set(sys.stdlib_module_names) | {"numpy", "onnxruntime", "gate", "__future__"}
    files = bundle_files()
    for rel, local in files.items():
        assert local.is_file(), rel
        extra = _imported_modules(local) - allowed
        assert not extra, f"{rel} imports {extra}: the device runner must need only numpy + onnxruntime"
        tree = ast.parse(local.read_text(encoding="utf-8"))
        for node in ast.walk(tree):  # relative imports must stay inside the bundle
            if isinstance(node, ast.ImportFrom) and node.level:
                assert f"gate/{node.module}.py" in files, f"{rel} imports .{node.module}, which is not in the bundle"


# ---------------------------------------------------------------- sshd fixture

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Sshd:
    port: int
    key: Path
    wrong_key: Path
    known_hosts: Path
    root: Path

    @property
    def url(self) -> str:
        import getpass

        return f"ssh://{getpass.getuser()}@127.0.0.1:{self.port}"

    def options(self, python: str, **kw) -> SshOptions:
        base = dict(identity_file=self.key, known_hosts=self.known_hosts, python=python, connect_timeout_s=10,
                    command_timeout_s=300, remote_dir=str(self.root / "device-home"), ssh_config="none")
        base.update(kw)
        return SshOptions(**base)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    if SSHD is None or shutil.which("ssh-keygen") is None or shutil.which("ssh") is None:
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server openssh-client)")
    root = tmp_path_factory.mktemp("sshd")
    host_key, key, wrong = root / "host_key", root / "client_key", root / "wrong_key"
    for k in (host_key, key, wrong):
        _keygen(k)
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    port = _free_port()
    cfg = root / "sshd_config"
    cfg.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"AuthorizedKeysFile {root / 'authorized_keys'}",
        "UsePAM no", "StrictModes no", f"PidFile {root / 'sshd.pid'}", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "PermitRootLogin prohibit-password",
        "Subsystem sftp internal-sftp", "LogLevel ERROR", "",
    ]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation directory sshd needs as root
    log = open(root / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 15
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited: {(root / 'sshd.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    known = root / "known_hosts"
    pub = (root / "host_key.pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    (root / "device-home").mkdir()
    try:
        yield Sshd(port, key, wrong, known, root)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _venv_with(tmp: Path, modules: list[str]) -> Path:
    """A venv (no pip) that can import only ``modules`` from this environment (linked, offline)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True)
    site_src = Path(sysconfig.get_paths()["purelib"])
    extra = tmp / "site"
    extra.mkdir()
    for m in modules:
        for name in (m, f"{m}.libs"):
            if (site_src / name).exists():
                (extra / name).symlink_to(site_src / name)
    py = tmp / "venv" / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "device_modules.pth").write_text(str(extra) + "\n")
    return py


@pytest.fixture(scope="session")
def device_python(tmp_path_factory) -> str:
    """A Python with numpy and onnxruntime only (no torch, transformers or prunegate)."""
    py = _venv_with(tmp_path_factory.mktemp("device_py"), ["numpy", "onnxruntime"])
    check = subprocess.run([str(py), "-c", "import numpy, onnxruntime\ntry:\n import torch\nexcept ImportError:\n print('clean')"],
                           capture_output=True, text=True)
    assert check.stdout.strip() == "clean", check.stderr
    return str(py)


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory) -> str:
    """A Python with numpy but without onnxruntime (a device that is not set up)."""
    return str(_venv_with(tmp_path_factory.mktemp("bare_py"), ["numpy"]))


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def suite_items(bbq_dir):
    from gate.bbq.data import load_bbq_dir
    from gate.bbq.suite import sample_suite

    return sample_suite(load_bbq_dir(bbq_dir), 16, 0)


# ---------------------------------------------------------------- against the server

def test_probe_copy_skip_and_cleanup(sshd, device_python, tiny_onnx_dir):
    import platform

    opts = sshd.options(device_python, remote_dir=str(sshd.root / "dev1"))
    lines: list[str] = []
    dev = RemoteDevice.open(DeviceSpec(sshd.url, opts), log=lines.append)
    assert dev.facts["machine"] == platform.machine() and dev.facts["onnxruntime"]
    assert "CPUExecutionProvider" in dev.facts["onnxruntime_available_providers"]
    model = dev.ensure_artifact(tiny_onnx_dir)
    assert Path(model).is_file() and dev.copies[0]["sent"] >= 1  # loopback: the device's files are visible here
    # A second device session finds everything already there (same SHA-256) and sends nothing.
    dev2 = RemoteDevice.open(DeviceSpec(sshd.url, opts), log=lines.append)
    assert dev2.ensure_artifact(tiny_onnx_dir) == model
    assert dev2.copies[0]["sent"] == 0 and dev2.copies[0]["skipped"] == dev.copies[0]["files"]
    # A corrupted file on the device is detected and re-sent.
    Path(model).write_bytes(b"garbage")
    dev3 = RemoteDevice.open(DeviceSpec(sshd.url, opts), log=lines.append)
    assert dev3.ensure_artifact(tiny_onnx_dir) == model and dev3.copies[0]["sent"] == 1
    assert dev2.close() and dev3.close()  # they copied nothing new except the repaired file -> removed
    assert dev.close()
    assert not (sshd.root / "dev1").exists(), list((sshd.root / "dev1").rglob("*"))


def test_keep_leaves_files(sshd, device_python, tiny_onnx_dir):
    opts = sshd.options(device_python, remote_dir=str(sshd.root / "dev-keep"), keep=True)
    dev = RemoteDevice.open(DeviceSpec(sshd.url, opts), log=lambda s: None)
    model = dev.ensure_artifact(tiny_onnx_dir)
    assert dev.close() and Path(model).is_file()


@pytest.mark.parametrize("mode,norm", [("loglik", False), ("loglik", True)])
def test_device_scoring_equals_local(sshd, device_python, tiny_onnx_dir, tokenizer, suite_items, mode, norm):
    from gate.runtime.bbq_scoring import score_items
    from gate.runtime.ort_decoder import OrtDecoder, SessionConfig

    session = SessionConfig(intra_op_threads=1)
    local, _ = score_items(OrtDecoder(tiny_onnx_dir / "model.onnx", session), tokenizer, suite_items,
                           mode=mode, length_normalize=norm)
    dev = RemoteDevice.open(DeviceSpec(sshd.url, sshd.options(device_python)), log=lambda s: None)
    seen = []
    try:
        remote, host_s, device_s = dev.score(tiny_onnx_dir, tokenizer, suite_items, session,
                                             lambda i, s: seen.append(i), mode=mode, length_normalize=norm)
    finally:
        dev.close()
    assert seen == list(range(len(suite_items)))
    assert [s.pred for s in remote] == [s.pred for s in local]
    assert [s.loglik for s in remote] == [s.loglik for s in local]  # same ORT build, same code: bit-identical
    assert [s.reused_tokens for s in remote] == [s.reused_tokens for s in local]
    assert 0 < device_s <= host_s


def test_letter_mode_matches_local(sshd, device_python, tiny_onnx_dir, tokenizer, suite_items):
    from gate.runtime.bbq_scoring import score_items
    from gate.runtime.ort_decoder import OrtDecoder, SessionConfig

    session = SessionConfig(intra_op_threads=1)
    try:
        local, _ = score_items(OrtDecoder(tiny_onnx_dir / "model.onnx", session), tokenizer, suite_items[:8],
                               mode="letter", permute_options=True)
    except InputError as exc:
        pytest.skip(f"the tiny tokenizer cannot do letter scoring: {exc}")
    dev = RemoteDevice.open(DeviceSpec(sshd.url, sshd.options(device_python)), log=lambda s: None)
    try:
        remote, _, _ = dev.score(tiny_onnx_dir, tokenizer, suite_items[:8], session, mode="letter", permute_options=True)
    finally:
        dev.close()
    assert [(s.pred, s.loglik, s.n_tokens) for s in remote] == [(s.pred, s.loglik, s.n_tokens) for s in local]


def test_interrupted_scoring_keeps_what_arrived(sshd, device_python, tiny_onnx_dir, tokenizer, suite_items):
    from gate.runtime.ort_decoder import SessionConfig

    dev = RemoteDevice.open(DeviceSpec(sshd.url, sshd.options(device_python)), log=lambda s: None)
    got = []

    def on_item(i, s):
        got.append(s)
        if len(got) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dev.score(tiny_onnx_dir, tokenizer, suite_items, SessionConfig(intra_op_threads=1), on_item)
    dev.close()
    assert len(got) == 3 and all(s.uid == it.uid for s, it in zip(got, suite_items))


def test_bench_child_and_placement_on_device(sshd, device_python, tiny_onnx_dir):
    from gate.measure.harness import BenchSettings, measure_variants
    from gate.runtime.ort_decoder import SessionConfig

    settings = BenchSettings(prompt_lengths=(8,), decode_context=8, warmup_min_runs=1, warmup_min_seconds=0.0,
                             min_runs=3, min_seconds=0.0, max_seconds=5.0, processes=1, timeout_s=120)
    session = SessionConfig(intra_op_threads=1)
    dev = RemoteDevice.open(DeviceSpec(sshd.url, sshd.options(device_python)), log=lambda s: None)
    try:
        res = measure_variants([("dense", tiny_onnx_dir / "model.onnx")], session, settings, log=lambda s: None,
                               run_child=dev.run_bench_child)["dense"]
        placement = dev.placement(tiny_onnx_dir, session)
    finally:
        dev.close()
    assert res["memory"]["peak_rss_bytes"] > 10e6  # an interpreter with numpy + onnxruntime loaded
    assert res["decode_ms_per_token"]["p50"] > 0 and res["prefill_ms"]["8"]["p50"] > 0
    assert res["providers_used"] == ["CPUExecutionProvider"]
    assert placement["n_nodes"] > 0 and set(placement["nodes_per_provider"]) == {"CPUExecutionProvider"}
    assert placement["measured_on"] == sshd.url


# ---------------------------------------------------------------- failure cases

def _open(sshd, python, **kw):
    return RemoteDevice.open(DeviceSpec(sshd.url, sshd.options(python, **kw)), log=lambda s: None)


def test_wrong_key_is_an_input_error(sshd, device_python):
    with pytest.raises(InputError, match="authentication failed with key .*wrong_key.*--device-identity"):
        _open(sshd, device_python, identity_file=sshd.wrong_key)


def test_unknown_host_key_refused_then_trusted_on_first_use(sshd, device_python, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(InputError, match="host key not in .*--device-trust-new-host"):
        _open(sshd, device_python, known_hosts=empty)
    dev = _open(sshd, device_python, known_hosts=empty, trust_new_host=True)  # accept-new records the key
    assert dev.facts["onnxruntime"] and dev.close()
    assert f"[127.0.0.1]:{sshd.port}" in empty.read_text()
    assert _open(sshd, device_python, known_hosts=empty).close()  # now strict checking passes


def test_changed_host_key_is_refused_even_with_trust_new(sshd, device_python, tmp_path):
    other = tmp_path / "other"
    _keygen(other)
    pub = (tmp_path / "other.pub").read_text().split()
    bad = tmp_path / "known_hosts"
    bad.write_text(f"[127.0.0.1]:{sshd.port} {pub[0]} {pub[1]}\n")
    with pytest.raises(InputError, match="CHANGED"):
        _open(sshd, device_python, known_hosts=bad, trust_new_host=True)


def test_missing_onnxruntime_names_the_install(sshd, bare_python):
    with pytest.raises(InputError, match="cannot import onnxruntime .*pip install numpy onnxruntime"):
        _open(sshd, bare_python)


def test_missing_python(sshd):
    with pytest.raises(InputError, match="no Python at '/nonexistent/python3'.*--device-python"):
        _open(sshd, "/nonexistent/python3")


def test_unreachable_port(sshd, device_python):
    spec = DeviceSpec(f"ssh://root@127.0.0.1:{_free_port()}", sshd.options(device_python))
    with pytest.raises(InputError, match="cannot connect"):
        RemoteDevice.open(spec, log=lambda s: None)


def test_command_timeout_and_out_of_memory(sshd, device_python):
    dev = SshDevice(parse_ssh_url(sshd.url), sshd.options(device_python, command_timeout_s=2), log=lambda s: None)
    try:
        t0 = time.time()
        with pytest.raises(DeviceError, match="timed out"):
            dev.run_python(["-c", "import time; time.sleep(60)"], "sleeping")
        assert time.time() - t0 < 30
        oom = "import resource; resource.setrlimit(resource.RLIMIT_AS, (2**29, 2**29)); x = bytearray(2**30)"
        with pytest.raises(DeviceError, match="ran out of memory"):
            dev.run_python(["-c", oom], "allocating")
    finally:
        dev.close()


def test_not_enough_disk_is_refused_before_copying(sshd, device_python, tmp_path, monkeypatch):
    """The free space is the device's answer; here it is made too small, and nothing may be copied."""
    f = tmp_path / "model.onnx"
    f.write_bytes(b"x" * 100_000)
    dev = SshDevice(parse_ssh_url(sshd.url), sshd.options(device_python, remote_dir=str(sshd.root / "disk")),
                    log=lambda s: None)
    real = dev._remote_missing
    monkeypatch.setattr(dev, "_remote_missing", lambda files: (real(files)[0], 50_000))
    put = []
    monkeypatch.setattr(dev, "_sftp_put", lambda *a: put.append(a))
    try:
        with pytest.raises(DeviceError, match="has 0 MB free .* need"):
            dev.sync([(f, "a/model.onnx")])
    finally:
        dev.close()
    assert not put and not (sshd.root / "disk").exists()


# ---------------------------------------------------------------- the whole gate through the device

def _check(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "gate.cli", "check", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=1800)


def test_full_gate_on_device_equals_local(sshd, device_python, tiny_model_dir, bbq_dir, tmp_path):
    common = ["--model", str(tiny_model_dir), "--bbq-dir", str(bbq_dir), "--suite-size", "16",
              "--candidate", "magnitude:0.5", "--work-dir", str(tmp_path / "work"), "--threads", "1",
              *FAST_BENCH]
    t0 = time.time()
    local = _check([*common, "--out", str(tmp_path / "local")])
    t_local = time.time() - t0
    assert local.returncode in (0, 1), local.stderr
    assert json.loads((tmp_path / "local" / "report.json").read_text()).get("error") is None, local.stderr
    t0 = time.time()
    remote = _check([*common, "--out", str(tmp_path / "remote"), "--device", sshd.url,
                     "--device-identity", str(sshd.key), "--device-known-hosts", str(sshd.known_hosts),
                     "--device-python", device_python, "--device-dir", str(sshd.root / "gate-home")])
    t_remote = time.time() - t0
    assert remote.returncode == local.returncode, remote.stderr
    print(f"\nfull gate: local {t_local:.1f} s, through the loopback ssh device {t_remote:.1f} s")
    for name in ("dense", "magnitude_0.5"):
        a = [json.loads(x) for x in (tmp_path / "local" / "predictions" / f"{name}.jsonl").read_text().splitlines()]
        b = [json.loads(x) for x in (tmp_path / "remote" / "predictions" / f"{name}.jsonl").read_text().splitlines()]
        assert [(r["uid"], r["pred_index"], r["loglik"]) for r in a] == [(r["uid"], r["pred_index"], r["loglik"]) for r in b]
    report = json.loads((tmp_path / "remote" / "report.json").read_text())
    assert report.get("error") is None and report["partial"] is False
    dev = report["device"]
    assert dev["measured_on_device"] and dev["facts"]["onnxruntime"] and dev["url"] == sshd.url
    whats = [c["what"] for c in dev["copies"]]
    assert "runner bundle" in whats and len(whats) == 3  # the bundle + 2 artifacts, each copied once
    assert dev["cleanup"] == "done" and len(dev["scoring"]) == 2
    for v in report["variants"]:
        assert v["bench"]["memory"]["peak_rss_bytes"] > 10e6
        assert v["bench"]["decode_ms_per_token"]["p50"] > 0
        assert v["bench"]["protocol"]["environment"]["measured_on"] == "device"
        assert v["bbq"]["scored_on"] == sshd.url
    assert report["execution"]["op_placement"]["dense"]["measured_on"] == sshd.url
    assert not (sshd.root / "gate-home").exists()  # cleaned up


FAST_BENCH = ["--prompt-lengths", "8", "--decode-context", "8", "--bench-min-runs", "3", "--bench-min-seconds", "0",
              "--bench-processes", "2", "--cv-limit", "100", "--ppl-window", "32", "--ppl-stride", "32",
              "--ppl-max-tokens", "256"]


def test_cli_wrong_key_fails_fast_with_one_line(sshd, device_python, tiny_model_dir, bbq_dir, tmp_path):
    t0 = time.time()
    proc = _check(["--model", str(tiny_model_dir), "--bbq-dir", str(bbq_dir), "--suite-size", "8",
                   "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work"), "--device", sshd.url,
                   "--device-identity", str(sshd.wrong_key), "--device-known-hosts", str(sshd.known_hosts),
                   "--device-python", device_python])
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "authentication failed" in errors[0] and "--device-identity" in errors[0]
    assert not (tmp_path / "work" / "exports-v1").exists()  # refused before any export
    assert time.time() - t0 < 120


def test_profile_device_field_and_local_override(sshd, device_python):
    from types import SimpleNamespace

    from gate.device.gate_steps import open_device

    bare = sshd.url.removeprefix("ssh://")  # a profile may hold a bare user@host:port destination
    profile = SimpleNamespace(name="lab-pi", device=bare)
    dev = open_device(None, sshd.options(device_python), profile, log=lambda s: None)
    try:
        assert dev is not None and dev.spec.source == "profile 'lab-pi' device" and dev.device.target.port == sshd.port
    finally:
        dev.close()
    assert open_device("local", sshd.options(device_python), profile, log=lambda s: None) is None
    assert open_device(None, sshd.options(device_python), SimpleNamespace(name="host", device=None), log=print) is None
