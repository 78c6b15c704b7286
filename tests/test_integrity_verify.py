"""``prunegate verify`` answers "is this the artifact that passed?", refuses what it must not follow, checks that a
report agrees with itself, and checks the report's signature.

Reports are built from a copy of ``tests/golden/check_report.json`` (a real run: verdict fail) whose artifact entries
are replaced by tiny artifact directories made here, so no gate run is needed.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_main

from exporters.artifact import (
    UnsafeArtifactError,
    artifact_files,
    describe_artifact,
    file_digests,
    model_files,
)
from gate.report.consistency import consistency_problems
from gate.report.outputs import render_files, report_digests
from gate.report.signing import (
    INTOTO_PAYLOAD_TYPE,
    SignatureError,
    load_private_key,
    load_public_key,
    pae,
    verify_envelope,
)
from gate.report.verify import verify_artifact

GOLDEN = Path(__file__).parent / "golden" / "check_report.json"
CAND = "magnitude:0.5"


# ---- helpers ------------------------------------------------------------------------------------------------------



def write_onnx(path: Path, value: float, location: str | None = None) -> None:
    """A one-node ONNX graph (y = x + w); with ``location``, ``w`` is external data at that location."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((2,), value, np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [w])
    model = helper.make_model(graph)
    if location is not None:
        init = model.graph.initializer[0]
        init.ClearField("raw_data")
        init.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", "0"), ("length", "8")):
            e = init.external_data.add()
            e.key, e.value = k, v
    path.write_bytes(model.SerializeToString())


def make_artifact(d: Path, value: float) -> Path:
    d.mkdir(parents=True)
    write_onnx(d / "model.onnx", value)
    (d / "config.json").write_text('{"model_type": "llama"}')
    return d


def _recount(report: dict) -> dict:
    """Summary and findings written from the report's checks (as gate.policy.decision.Decision does)."""
    by_status = {s: 0 for s in ("pass", "fail", "inconclusive", "waived", "error", "skipped")}
    for c in report["checks"]:
        by_status[c["status"]] += 1
    report["summary"].update(
        checks_total=len(report["checks"]), by_status=by_status,
        executed=sum(by_status[s] for s in ("pass", "fail", "inconclusive", "waived")),
        blocking=[f"{c['variant']}:{c['id']}" for c in report["checks"] if c["effect"] in ("fail", "exit-3", "error")])
    keep = ("id", "variant", "status", "severity", "effect", "message", "waived_by")
    report["findings"] = [{k: c[k] for k in keep} | {"values": c["values"]} for c in report["checks"]
                          if c["effect"] != "none" or c["status"] == "waived"]
    return report


@pytest.fixture
def runs(tmp_path):
    """Artifact dirs for dense, magnitude:0.5 and random:0.3, and two reports over them: the golden one (verdict
    fail) and the same run edited into a pass (every check passes, summary/findings/verdict/exit code rewritten)."""
    golden = json.loads(GOLDEN.read_text())
    dirs = {name: make_artifact(tmp_path / "art" / name.replace(":", "_"), value)
            for name, value in (("dense", 1.0), ("magnitude:0.5", 2.0), ("random:0.3", 3.0))}
    failed = copy.deepcopy(golden)
    for v in failed["variants"]:
        v["artifact"] = describe_artifact(dirs[v["name"]])
    failed["digests"] = report_digests(failed)
    passed = copy.deepcopy(failed)
    for c in passed["checks"]:
        if c["status"] in ("fail", "inconclusive"):
            c["status"], c["effect"] = "pass", "none"
    _recount(passed)
    passed["summary"]["reason"] = "all executed check(s) passed"
    passed["verdict"], passed["exit_code"] = "pass", 0
    paths = {}
    for name, rep in (("failed", failed), ("passed", passed)):
        out = tmp_path / name
        out.mkdir()
        (out / "report.json").write_text(json.dumps(rep, indent=1))
        for fname, text in render_files(rep, ("intoto",)).items():
            (out / fname).write_text(text)
        paths[name] = out / "report.json"
    return {"dirs": dirs, "failed": failed, "passed": passed, "paths": paths, "tmp": tmp_path}


def _write(tmp_path: Path, report: dict, name: str = "edited.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(report))
    return p


# ---- 1. verify: only a candidate that passed ------------------------------------------------------------------------

def test_the_fixture_reports_are_consistent(runs):
    assert consistency_problems(json.loads(GOLDEN.read_text())) == []
    assert consistency_problems(runs["failed"]) == []
    assert consistency_problems(runs["passed"]) == []


def test_a_passing_candidate_verifies(runs, capsys):
    rep, art = str(runs["paths"]["passed"]), str(runs["dirs"][CAND])
    code, out, err = run_main(capsys, "verify", art, "--report", rep)
    assert code == 0, err
    assert f"matches variant {CAND}" in out and f"candidate {CAND} passed the gate (verdict pass)" in out
    assert run_main(capsys, "verify", "--report", rep, "--artifact", art)[0] == 0
    assert run_main(capsys, "verify", "--report", rep, "--artifact", art, "--variant", CAND)[0] == 0


def test_the_baseline_is_not_the_artifact_that_passed(runs, capsys):
    rep, art = str(runs["paths"]["passed"]), str(runs["dirs"]["dense"])
    code, _, err = run_main(capsys, "verify", art, "--report", rep)
    assert code == 5
    assert "dense is the baseline variant, not a candidate" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_main(capsys, "verify", art, "--report", rep, "--variant", "dense")
    assert code == 5 and "not a candidate" in err
    code, out, _ = run_main(capsys, "verify", art, "--report", rep, "--any-verdict")
    assert code == 0 and "matches variant dense" in out and "verdict not checked" in out


def test_a_failed_candidate_is_refused_unless_any_verdict(runs, capsys):
    rep, art = str(runs["paths"]["failed"]), str(runs["dirs"][CAND])
    code, _, err = run_main(capsys, "verify", art, "--report", rep)
    assert code == 5 and f"the gate's verdict is fail: candidate {CAND} did not pass" in err, err
    result = verify_artifact(runs["failed"], art)
    assert not result.ok and result.integrity_ok and result.passed is False and result.kind == "verdict"
    code, out, _ = run_main(capsys, "verify", art, "--report", rep, "--any-verdict")
    assert code == 0 and "the gate's verdict is fail" in out


def test_an_inconclusive_run_is_refused(runs, capsys):
    rep = copy.deepcopy(runs["passed"])
    check = next(c for c in rep["checks"] if c["variant"] == "random:0.3" and c["id"] == "bias.s_amb")
    check["status"], check["effect"] = "inconclusive", "exit-3"
    rep["summary"]["on_inconclusive"] = "exit-3"
    _recount(rep)
    rep["verdict"], rep["exit_code"] = "inconclusive", 3
    assert consistency_problems(rep) == []
    path = _write(runs["tmp"], rep)
    code, _, err = run_main(capsys, "verify", str(runs["dirs"][CAND]), "--report", str(path))
    assert code == 5 and "the gate's verdict is inconclusive" in err


def test_a_candidate_without_an_executed_check_is_refused(runs):
    rep = copy.deepcopy(runs["passed"])
    for c in rep["checks"]:
        if c["variant"] == CAND:
            c["status"], c["effect"] = "skipped", "none"
    _recount(rep)
    assert consistency_problems(rep) == []
    result = verify_artifact(rep, runs["dirs"][CAND])
    assert not result.ok and "has no executed check" in result.message


# ---- 2. symlinks, special files, external data ---------------------------------------------------------------------

def _no_hashing(monkeypatch):
    from exporters import artifact

    def boom(path):
        raise AssertionError(f"hashed {path} before refusing the directory")

    monkeypatch.setattr(artifact, "sha256_file", boom)


@pytest.mark.parametrize("kind", ["file_link", "dir_link", "dangling_link", "fifo"])
def test_links_and_special_files_are_refused_before_hashing(runs, capsys, monkeypatch, kind, tmp_path):
    art = runs["dirs"][CAND]
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "shadow").write_text("root:$6$...")
    name = {"file_link": "NOTES.txt", "dir_link": "docs", "dangling_link": "gone.txt", "fifo": "pipe"}[kind]
    if kind == "file_link":
        os.symlink(secret / "shadow", art / name)
    elif kind == "dir_link":
        os.symlink(secret, art / name)
    elif kind == "dangling_link":
        os.symlink(tmp_path / "nowhere", art / name)
    else:
        os.mkfifo(art / name)
    what = "a FIFO" if kind == "fifo" else "a symbolic link"
    _no_hashing(monkeypatch)
    for fn in (artifact_files, file_digests, describe_artifact):
        with pytest.raises(UnsafeArtifactError, match=f"{name} is {what}") as exc:
            fn(art)
        assert exc.value.name == name
    code, _, err = run_main(capsys, "verify", str(art), "--report", str(runs["paths"]["passed"]), "--any-verdict")
    assert code == 5 and f"integrity error: artifact {art}: {name} is {what}" in err, err


def test_a_nested_link_is_refused_and_ignored_names_are_not_read(runs, monkeypatch, tmp_path):
    art = runs["dirs"][CAND]
    (art / "sub").mkdir()
    os.symlink("/etc/passwd", art / "sub" / "x")
    with pytest.raises(UnsafeArtifactError) as exc:
        artifact_files(art)
    assert exc.value.name == "sub/x"
    os.unlink(art / "sub" / "x")
    os.symlink("/etc/passwd", art / "report.json")  # an attached report is not part of the artifact
    assert "report.json" not in {p.name for p in artifact_files(art)}


@pytest.mark.parametrize("location, fragment, dir_fragment", [
    ("../outside.bin", "not a relative path inside the artifact", None),
    ("/etc/shadow", "not a relative path inside the artifact", None),
    ("sub/../../outside.bin", "not a relative path inside the artifact", None),
    # through a directory link in the artifact: the graph's location leaves it; the directory walk refuses the link
    ("escape/outside.bin", "resolves outside the artifact directory", "escape is a symbolic link"),
])
def test_external_data_outside_the_directory_is_refused(runs, capsys, monkeypatch, location, fragment, dir_fragment):
    art = runs["dirs"][CAND]
    (art.parent / "outside.bin").write_bytes(b"\x00" * 8)
    if location.startswith("escape/"):
        os.symlink(art.parent, art / "escape")
    write_onnx(art / "model.onnx", 2.0, location)
    _no_hashing(monkeypatch)
    with pytest.raises(UnsafeArtifactError, match=fragment):
        model_files(art)
    for fn in (file_digests, describe_artifact):
        with pytest.raises(UnsafeArtifactError, match=dir_fragment or fragment):
            fn(art)
    monkeypatch.undo()
    code, _, err = run_main(capsys, "verify", str(art), "--report", str(runs["paths"]["passed"]), "--any-verdict")
    assert code == 5 and (dir_fragment or fragment) in err and "integrity error" in err


def test_external_data_inside_the_directory_is_part_of_the_model(tmp_path):
    art = tmp_path / "a"
    art.mkdir()
    write_onnx(art / "model.onnx", 2.0, "weights/w.bin")
    (art / "weights").mkdir()
    (art / "weights" / "w.bin").write_bytes(b"\x00" * 8)
    assert [p.relative_to(art).as_posix() for p in model_files(art)] == ["model.onnx", "weights/w.bin"]
    desc = describe_artifact(art)
    assert [f["name"] for f in desc["files"]] == ["model.onnx", "weights/w.bin"] and desc["other_files"] == []
    (art / "weights" / "w.bin").unlink()
    os.symlink(tmp_path / "elsewhere.bin", art / "weights" / "w.bin")
    with pytest.raises(UnsafeArtifactError, match="resolves outside the artifact directory"):
        model_files(art)
    (art / "weights" / "w.bin").unlink()
    (art / "weights" / "real.bin").write_bytes(b"\x00" * 8)
    os.symlink("real.bin", art / "weights" / "w.bin")  # even inside the directory, a link is not followed
    with pytest.raises(UnsafeArtifactError, match="weights/w.bin is a symbolic link"):
        model_files(art)


def test_check_refuses_a_symlinked_candidate_dir_with_exit_2(runs, capsys, tmp_path):
    """describe_artifact is what `check` calls: its UnsafeArtifactError is an InputError, i.e. exit 2."""
    from gate.runtime.errors import InputError

    art = runs["dirs"][CAND]
    os.symlink("/etc/hostname", art / "NOTES.txt")
    with pytest.raises(InputError, match="NOTES.txt is a symbolic link"):
        describe_artifact(art)


# ---- 3. report validate: consistency ------------------------------------------------------------------------------

def _edits():
    def verdict_pass(r):
        r["verdict"], r["exit_code"] = "pass", 0

    def exit_code(r):
        r["exit_code"] = 0

    def effect(r):
        c = next(c for c in r["checks"] if c["effect"] == "fail")
        c["effect"] = "none"

    def status(r):
        c = next(c for c in r["checks"] if c["status"] == "fail" and c["effect"] == "fail")
        c["status"] = "pass"

    def count(r):
        r["summary"]["by_status"]["fail"] -= 1

    def blocking(r):
        r["summary"]["blocking"] = []

    def file_digest(r):
        r["variants"][1]["artifact"]["files"][0]["sha256"] = "0" * 64

    def digests_field(r):
        r["digests"]["artifacts"]["magnitude:0.5"]["sha256"] = "1" * 64

    def findings(r):
        r["findings"] = r["findings"][1:]

    return [
        (verdict_pass, "verdict is pass but the checks give fail"),
        (exit_code, "exit_code is 0 but verdict fail exits 1"),
        (effect, "check effects disagree with the decision rule"),
        (status, "check effects disagree with the decision rule"),
        (count, "summary.by_status"),
        (blocking, "summary.blocking"),
        (file_digest, "is not the digest of its own file list"),
        (digests_field, "digests.artifacts do not match"),
        (findings, "findings do not list exactly the checks with an effect"),
    ]


@pytest.mark.parametrize("edit, fragment", _edits(), ids=lambda x: getattr(x, "__name__", None))
def test_report_validate_names_the_inconsistency(runs, capsys, edit, fragment):
    rep = copy.deepcopy(runs["failed"])
    edit(rep)
    path = _write(runs["tmp"], rep)
    code, _, err = run_main(capsys, "report", "validate", "--report", str(path))
    assert code == 2 and "inconsistent report" in err and fragment in err, err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run_main(capsys, "verify", str(runs["dirs"][CAND]), "--report", str(path), "--any-verdict")
    assert code == 5 and fragment in err, err


def test_report_validate_accepts_consistent_reports(runs, capsys):
    for p in (GOLDEN, runs["paths"]["failed"], runs["paths"]["passed"]):
        code, out, err = run_main(capsys, "report", "validate", "--report", str(p))
        assert code == 0 and "valid and consistent" in out, err


def test_a_report_without_checks_cannot_pass(runs):
    rep = copy.deepcopy(runs["passed"])
    rep.pop("checks")
    assert any("has no checks" in p for p in consistency_problems(rep))


# ---- 4. signing ---------------------------------------------------------------------------------------------------

def test_pae_matches_the_dsse_spec():
    # secure-systems-lab/dsse protocol.md, "Test cases"
    assert pae("http://example.com/HelloWorld", b"hello world") == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


@pytest.fixture
def keys(tmp_path, capsys):
    code, _out, err = run_main(capsys, "report", "keygen", str(tmp_path / "keys"))
    assert code == 0, err
    priv, pub = tmp_path / "keys" / "prunegate-signing-key.pem", tmp_path / "keys" / "prunegate-signing-key.pub.pem"
    assert oct(priv.stat().st_mode & 0o777) == "0o600"
    return priv, pub


def test_keygen_never_overwrites(keys, capsys):
    code, _, err = run_main(capsys, "report", "keygen", str(keys[0].parent))
    assert code == 2 and "exists already" in err


def test_a_signed_report_verifies_and_any_edit_breaks_it(runs, keys, capsys):
    priv, pub = keys
    rep = runs["paths"]["passed"]
    code, out, err = run_main(capsys, "report", "sign", str(rep), "--key", str(priv))
    assert code == 0, err
    sig = rep.with_name("report.json.sig")
    statements = sorted(p.name for p in rep.parent.glob("intoto*.json"))
    assert statements == ["intoto-magnitude_0.5.json", "intoto-random_0.3.json"]
    assert all(rep.with_name(s + ".sig").is_file() for s in statements)
    envelope = json.loads(sig.read_text())
    assert base64.b64decode(envelope["payload"]) == rep.read_bytes()
    art = str(runs["dirs"][CAND])
    code, out, err = run_main(capsys, "verify", art, "--report", str(rep), "--signature", str(sig), "--public-key", str(pub))
    assert code == 0 and "report signed with" in out, err
    assert run_main(capsys, "verify", art, "--report", str(rep), "--public-key", str(pub))[0] == 0  # default REPORT.sig

    # the statements' envelopes verify with the same key
    for s in statements:
        body = rep.with_name(s).read_bytes()
        verify_envelope(rep.with_name(s + ".sig").read_bytes(), body, INTOTO_PAYLOAD_TYPE, load_public_key(pub))

    # a file digest and the root digest edited together: consistent, so validate passes ...
    edited = json.loads(rep.read_text())
    v = next(v for v in edited["variants"] if v["name"] == CAND)
    (runs["dirs"][CAND] / "config.json").write_text('{"model_type": "evil"}')
    v["artifact"] = describe_artifact(runs["dirs"][CAND])
    edited["digests"] = report_digests(edited)
    forged = rep.with_name("forged.json")
    forged.write_text(json.dumps(edited, indent=1))
    assert run_main(capsys, "report", "validate", "--report", str(forged))[0] == 0
    assert run_main(capsys, "verify", art, "--report", str(forged))[0] == 0
    # ... but it is not what was signed
    code, _, err = run_main(capsys, "verify", art, "--report", str(forged), "--signature", str(sig), "--public-key", str(pub))
    assert code == 5 and "signs other bytes than the file" in err, err

    # the smallest edit of the signed file breaks it too
    original = rep.read_bytes()
    rep.write_bytes(original.replace(b'"verdict": "pass"', b'"verdict":  "pass"'))
    code, _, err = run_main(capsys, "verify", art, "--report", str(rep), "--public-key", str(pub))
    assert code == 5 and "integrity error" in err
    rep.write_bytes(original)


def test_bad_or_missing_signatures_are_integrity_errors(runs, keys, capsys, tmp_path):
    priv, pub = keys
    rep = runs["paths"]["passed"]
    art = str(runs["dirs"][CAND])
    # not signed at all
    code, _, err = run_main(capsys, "verify", art, "--report", str(rep), "--public-key", str(pub))
    assert code == 5 and "not signed" in err
    assert run_main(capsys, "report", "sign", str(rep), "--key", str(priv))[0] == 0
    sig = rep.with_name("report.json.sig")
    # another key
    run_main(capsys, "report", "keygen", str(tmp_path / "other"))
    other = tmp_path / "other" / "prunegate-signing-key.pub.pem"
    code, _, err = run_main(capsys, "verify", art, "--report", str(rep), "--public-key", str(other))
    assert code == 5 and "no signature verifies with the public key" in err
    # a forged signature over the same payload
    env = json.loads(sig.read_text())
    env["signatures"][0]["sig"] = base64.b64encode(b"\x00" * 64).decode()
    sig.write_text(json.dumps(env))
    code, _, err = run_main(capsys, "verify", art, "--report", str(rep), "--public-key", str(pub))
    assert code == 5 and "no signature verifies" in err
    # garbage
    sig.write_text("not json")
    code, _, err = run_main(capsys, "verify", art, "--report", str(rep), "--public-key", str(pub))
    assert code == 5 and "not a DSSE envelope" in err
    # a signature without a key is a usage error; a key that is not a key is bad input
    code, _, err = run_main(capsys, "verify", art, "--report", str(rep), "--signature", str(sig))
    assert code == 2 and "needs --public-key" in err
    code, _, err = run_main(capsys, "verify", art, "--report", str(rep), "--public-key", str(rep))
    assert code == 2 and "--public-key" in err and "not a readable PEM public key" in err


def test_envelope_of_another_payload_type_is_refused(keys):
    from gate.report.signing import REPORT_PAYLOAD_TYPE, sign_bytes

    priv, pub = keys
    env = json.dumps(sign_bytes(b"{}", INTOTO_PAYLOAD_TYPE, load_private_key(priv))).encode()
    with pytest.raises(SignatureError, match="not 'application/vnd.prunegate.report"):
        verify_envelope(env, b"{}", REPORT_PAYLOAD_TYPE, load_public_key(pub))


def test_sign_refuses_an_inconsistent_report_or_a_stale_statement(runs, keys, capsys):
    priv, _ = keys
    rep = copy.deepcopy(runs["failed"])
    rep["verdict"], rep["exit_code"] = "pass", 0
    path = _write(runs["tmp"], rep)
    code, _, err = run_main(capsys, "report", "sign", str(path), "--key", str(priv))
    assert code == 2 and "inconsistent report" in err and not path.with_name(path.name + ".sig").exists()
    good = runs["paths"]["failed"]
    st = good.with_name("intoto-magnitude_0.5.json")
    statement = json.loads(st.read_text())
    statement["predicate"]["result"] = "PASSED"
    st.write_text(json.dumps(statement))
    code, _, err = run_main(capsys, "report", "sign", str(good), "--key", str(priv))
    assert code == 2 and "does not match the in-toto statement" in err
    assert not good.with_name("report.json.sig").exists()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_keys_work(runs, tmp_path, capsys):
    priv, pub = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(priv)], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(priv), "-pubout", "-out", str(pub)], check=True, capture_output=True)
    rep = runs["paths"]["passed"]
    assert run_main(capsys, "report", "sign", str(rep), "--key", str(priv))[0] == 0
    code, _, err = run_main(capsys, "verify", str(runs["dirs"][CAND]), "--report", str(rep), "--public-key", str(pub))
    assert code == 0, err
