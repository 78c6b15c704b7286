"""A gate that cannot be fooled, item 5: untrusted inputs are read strictly, and nothing outlives the gate.

Each case feeds one small bad input and checks the one-line InputError (exit 2 from the CLI) that names the input
and the fix: predictions files (integer fields, encodings), BBQ files with invalid UTF-8, upper-case candidate
specs, SSH device URLs and paths that would reach ``ssh`` as options or inject sftp batch lines. The last tests
start a benchmark child through the harness's own launch path and kill its parent (SIGTERM and SIGKILL): the child
must be gone within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_cli_errors import assert_input_error, run_cli
from test_device_ssh import sshd  # noqa: F401  (the session fixture: a real sshd on loopback)

from exporters.candidates import parse_candidate
from gate.bbq.data import load_bbq_dir
from gate.bbq.predictions import read_predictions
from gate.device.ssh import SshDevice, SshOptions, parse_ssh_url, sftp_quote
from gate.runtime.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def _one_line_error(fn, *args, **kw) -> str:
    with pytest.raises(InputError) as err:
        fn(*args, **kw)
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


# ---------------------------------------------------------------- predictions


def _jsonl(tmp_path: Path, *rows: str) -> Path:
    f = tmp_path / "p.jsonl"
    f.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return f


@pytest.mark.parametrize("row, field", [
    ('{"category": "Age", "example_id": 1, "pred_index": 2.9}', "pred_index=2.9"),
    ('{"category": "Age", "example_id": 1, "pred_index": 2.0}', "pred_index=2.0"),
    ('{"category": "Age", "example_id": 1, "pred_index": true}', "pred_index=True"),
    ('{"category": "Age", "example_id": 1, "pred_index": "\uff12"}', "pred_index='\uff12'"),  # full-width 2
    ('{"category": "Age", "example_id": 1, "pred_index": " 2"}', "pred_index=' 2'"),
    ('{"category": "Age", "example_id": 1, "pred_index": "-0"}', "pred_index='-0'"),
    ('{"category": "Age", "example_id": 2.7, "pred_index": 1}', "example_id=2.7"),
    ('{"category": "Age", "example_id": true, "pred_index": 1}', "example_id=True"),
    ('{"category": "Age", "example_id": "\uff13", "pred_index": 1}', "example_id='\uff13'"),
    ('{"category": "Age", "example_id": -3, "pred_index": 1}', "example_id=-3"),
    ('{"category": "Age", "example_id": "1e3", "pred_index": 1}', "example_id='1e3'"),
    ('{"category": 7, "example_id": 1, "pred_index": 1}', "category=7"),
])
def test_jsonl_integer_fields_are_not_coerced(tmp_path, row, field):
    f = _jsonl(tmp_path, '{"category": "Age", "example_id": 0, "pred_index": 0}', row)
    msg = _one_line_error(read_predictions, f)
    assert f"{f}:2:" in msg and field in msg


@pytest.mark.parametrize("line, field", [
    ("Age,1,2.9", "pred_index='2.9'"),
    ("Age,1,true", "pred_index='true'"),
    ("Age,1,\uff12", "pred_index='\uff12'"),
    ("Age,2.7,1", "example_id='2.7'"),
    ("Age,\uff13,1", "example_id='\uff13'"),
    ("Age, 3,1", "example_id=' 3'"),
])
def test_csv_integer_fields_are_not_coerced(tmp_path, line, field):
    f = tmp_path / "p.csv"
    f.write_text(f"category,example_id,pred_index\nAge,0,0\n{line}\n", encoding="utf-8")
    msg = _one_line_error(read_predictions, f)
    assert f"{f}:3:" in msg and field in msg


def test_csv_rows_must_have_the_header_width_and_unique_columns(tmp_path):
    short = tmp_path / "short.csv"
    short.write_text("category,example_id,pred_index\nAge,0\n", encoding="utf-8")  # today: pred None = "unmatched"
    assert f"{short}:2:" in _one_line_error(read_predictions, short)
    twice = tmp_path / "twice.csv"
    twice.write_text("category,example_id,pred_index,pred_index\nAge,0,1,2\n", encoding="utf-8")
    assert "pred_index appear twice" in _one_line_error(read_predictions, twice)


def test_jsonl_repeated_key_is_refused(tmp_path):
    f = _jsonl(tmp_path, '{"category": "Age", "example_id": 0, "pred_index": 1, "pred_index": 2}')
    msg = _one_line_error(read_predictions, f)
    assert f"{f}:1:" in msg and "pred_index appear twice" in msg


def test_strict_reader_still_reads_valid_files(tmp_path):
    f = _jsonl(tmp_path,
               '{"category": "Age", "example_id": 0, "pred_index": 2}',
               '{"category": "Age", "example_id": "1", "pred_index": "1"}',
               '{"category": "Age", "example_id": 2, "pred_index": -1}',
               '{"category": "Age", "example_id": 3, "pred_index": null}',
               '{"category": "Age", "example_id": 4, "pred_index": "-1"}')
    assert read_predictions(f) == {"Age/0": 2, "Age/1": 1, "Age/2": None, "Age/3": None, "Age/4": None}
    c = tmp_path / "p.csv"
    c.write_bytes("\ufeffcategory,example_id,pred_index\r\nAge,0,0\r\nAge,1,\r\n".encode())  # BOM + CRLF, Excel style
    assert read_predictions(c) == {"Age/0": 0, "Age/1": None}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "latin-1"])
def test_non_utf8_predictions_file(tmp_path, encoding):
    f = tmp_path / "p.csv"
    f.write_text("category,example_id,pred_index\nAge,0,1\nAge,1,0 \u00e9\n", encoding=encoding)
    msg = _one_line_error(read_predictions, f)
    assert str(f) in msg and "must be UTF-8" in msg


def test_cli_bbq_score_refuses_float_and_utf16_with_exit_2(tmp_path, bbq_dir):
    f = _jsonl(tmp_path, '{"category": "Age", "example_id": 0, "pred_index": 2.9}')
    assert_input_error(run_cli("bbq", "score", "--bbq-dir", str(bbq_dir), "--predictions", str(f)),
                       f"{f}:1:", "pred_index=2.9")
    u = tmp_path / "u.csv"
    u.write_text("category,example_id,pred_index\nAge,0,1\n", encoding="utf-16")
    assert_input_error(run_cli("bbq", "score", "--bbq-dir", str(bbq_dir), "--predictions", str(u)),
                       str(u), "must be UTF-8")


# ---------------------------------------------------------------- BBQ data


def _bbq_copy(tmp_path: Path, bbq_dir: Path, bad_line: int) -> Path:
    d = tmp_path / "bbq"
    d.mkdir()
    lines = (bbq_dir / "Age.jsonl").read_bytes().splitlines(keepends=True)[:5]
    lines[bad_line - 1] = lines[bad_line - 1].replace(b'"context": "', b'"context": "\xff\xfe', 1)
    (d / "Age.jsonl").write_bytes(b"".join(lines))
    return d


def test_bbq_file_with_invalid_utf8_names_file_and_line(tmp_path, bbq_dir):
    d = _bbq_copy(tmp_path, bbq_dir, bad_line=3)
    msg = _one_line_error(load_bbq_dir, d)
    assert f"{d / 'Age.jsonl'}:3:" in msg and "UTF-8" in msg and "0xff" in msg


def test_cli_bbq_file_with_invalid_utf8_is_exit_2(tmp_path, bbq_dir):
    d = _bbq_copy(tmp_path, bbq_dir, bad_line=2)
    proc = run_cli("suite", "build", "--bbq-dir", str(d), "--suite-size", "4", "--out", str(tmp_path / "s.json"))
    assert_input_error(proc, f"{d / 'Age.jsonl'}:2:", "UTF-8")


# ---------------------------------------------------------------- candidate specs


@pytest.mark.parametrize("spec, suggestion", [
    ("MAGNITUDE:0.5", "did you mean magnitude:0.5?"),
    ("Wanda:2:4+INT8", "did you mean wanda:2:4+int8?"),
    ("INT4", "did you mean int4?"),
    ("magnitude:5E-1", "did you mean magnitude:5e-1?"),
])
def test_upper_case_candidate_is_refused_with_the_lower_case_spec(spec, suggestion):
    assert suggestion in _one_line_error(parse_candidate, spec)


def test_one_candidate_has_one_name():
    """The name is the spec without spaces, so the CLI's duplicate check sees "a + b" and "a+b" as one candidate."""
    assert parse_candidate(" wanda:0.5 + int8 ").spec == parse_candidate("wanda:0.5+int8").spec == "wanda:0.5+int8"
    assert "specs are lower-case: wanda" in _one_line_error(parse_candidate, "Wanda:2:4:8")


@pytest.mark.parametrize("spec, fragment", [
    ("wanda:\uff12:\uff14", "two whole numbers"),  # full-width digits
    ("wanda:0.\uff15", "not a number"),
    ("wanda:2:" + "9" * 5000, "two whole numbers"),  # no int() of a 5000-digit string
])
def test_candidate_numbers_are_ascii(spec, fragment):
    assert fragment in _one_line_error(parse_candidate, spec)


def test_cli_upper_case_candidate_is_exit_2(tmp_path, bbq_dir):
    proc = run_cli("check", "--candidate", "MAGNITUDE:0.5", "--bbq-dir", str(bbq_dir), "--out", str(tmp_path / "o"))
    assert_input_error(proc, "--candidate", "did you mean magnitude:0.5?")


# ---------------------------------------------------------------- SSH device


@pytest.mark.parametrize("url, fragment", [
    ("ssh://-oProxyCommand=touch%20pwned", "host '-oproxycommand=touch%20pwned'"),
    ("-oProxyCommand=x", "host"),
    ("ssh://-l@board", "user '-l'"),
    ("ssh://%2DoProxyCommand=x@board", "user '-oProxyCommand=x'"),
    ("ssh://pi%0A@board", "user 'pi\\n'"),
    ("ssh://pi;id@board", "user 'pi;id'"),
    ("ssh://pi@board\n", None),  # trailing whitespace is stripped: accepted
    ("ssh://pi@bo\nard", "control character"),
    ("ssh://board:0", "port"),
    ("ssh://board:", "port"),
    ("ssh://board:\uff12\uff12", "port"),
])
def test_device_url_cannot_smuggle_ssh_options(url, fragment):
    if fragment is None:
        assert parse_ssh_url(url).destination == "pi@board"
        return
    msg = _one_line_error(parse_ssh_url, url, "--device")
    assert msg.startswith("--device ") and fragment in msg


def test_ssh_argv_ends_options_before_the_destination():
    dev = SshDevice(parse_ssh_url("ssh://pi@board:2222"), SshOptions(multiplex=False), log=lambda s: None)
    argv = dev.ssh_argv("true")
    assert argv[-3:] == ["--", "pi@board", "true"]
    assert argv[argv.index("-p") + 1] == "2222"


@pytest.mark.parametrize("field, value, option", [
    ("remote_dir", "x\n!touch /tmp/pg-pwned", "--device-dir"),
    ("remote_dir", "dir\r", "--device-dir"),
    ("remote_dir", "-rf", "--device-dir"),
    ("python", "python3\n!id", "--device-python"),
    ("known_hosts", Path("/tmp/k\nProxyCommand=x"), "--device-known-hosts"),
])
def test_device_options_with_control_characters_or_dashes(field, value, option):
    opts = SshOptions(multiplex=False, **{field: value})
    msg = _one_line_error(SshDevice, parse_ssh_url("ssh://pi@board"), opts, lambda s: None)
    assert msg.startswith(option)


def test_sftp_quote_quotes_and_refuses_what_quotes_cannot_carry():
    assert sftp_quote("code/ab12/gate/runtime/x.py", "p") == '"code/ab12/gate/runtime/x.py"'
    assert sftp_quote('a b"c\\d', "p") == '"a b\\"c\\\\d"'
    assert sftp_quote("-r", "p") == '"./-r"'
    assert "control character" in _one_line_error(sftp_quote, "a\nput /etc/passwd x", "device path")


def test_sftp_copies_strange_names_literally_and_runs_nothing(sshd, tmp_path):  # noqa: F811
    """A real sftp session: names with spaces, quotes, glob and shell characters arrive byte for byte."""
    src = tmp_path / "src dir"  # no glob characters here: a glob in a name below must find its decoy
    src.mkdir()
    names = ["a b.txt", 'q"uote', "it's", "star*", "br[ack]et", "back\\slash", "-dash", "#hash", "!bang", "x;$(id)"]
    for i, n in enumerate(names):
        (src / n).write_text(f"file {i}\n")
    (src / "star (decoy)").write_text("must not be sent by a glob\n")
    marker = tmp_path / "pwned"
    remote_dir = tmp_path / "device home" / "it's [x]"
    opts = SshOptions(identity_file=sshd.key, known_hosts=sshd.known_hosts, ssh_config="none", connect_timeout_s=10,
                      command_timeout_s=120, remote_dir=str(remote_dir), python=sys.executable)
    dev = SshDevice(parse_ssh_url(sshd.url), opts, log=lambda s: None)
    try:
        stats = dev.sync([(src / n, f"sub {i}/{n}") for i, n in enumerate(names)])
    finally:
        dev.close()
    assert stats["sent"] == len(names)
    for i, n in enumerate(names):
        assert [p.name for p in (remote_dir / f"sub {i}").iterdir()] == [n]
        assert (remote_dir / f"sub {i}" / n).read_text() == f"file {i}\n", n
    assert sorted(p.name for p in remote_dir.iterdir()) == sorted(f"sub {i}" for i in range(len(names)))
    assert not marker.exists()


def test_a_file_name_with_a_newline_never_reaches_sftp(sshd, tmp_path, monkeypatch):  # noqa: F811
    """An artifact's file names come from the model directory (external-data names are written in the ONNX graph)."""
    monkeypatch.chdir(tmp_path)  # where an injected "!touch pwned" would run
    marker = tmp_path / "pwned"
    evil = tmp_path / "w.bin\n!touch pwned"
    evil.write_text("x")
    opts = SshOptions(identity_file=sshd.key, known_hosts=sshd.known_hosts, ssh_config="none", connect_timeout_s=10,
                      command_timeout_s=120, remote_dir=str(tmp_path / "dev"), python=sys.executable)
    dev = SshDevice(parse_ssh_url(sshd.url), opts, log=lambda s: None)
    try:
        msg = _one_line_error(dev.sync, [(evil, "artifacts/0123/" + evil.name)])
    finally:
        dev.close()
    assert msg.startswith("artifact file") and "control character" in msg
    assert not marker.exists()


def test_device_dir_newline_never_reaches_sftp(sshd, tmp_path):  # noqa: F811
    marker = tmp_path / "pwned"
    opts = SshOptions(identity_file=sshd.key, known_hosts=sshd.known_hosts, ssh_config="none",
                      remote_dir=f"x\n!touch {marker}", python=sys.executable)
    msg = _one_line_error(SshDevice, parse_ssh_url(sshd.url), opts, lambda s: None)
    assert msg.startswith("--device-dir") and "control character" in msg
    assert not marker.exists()


def test_cli_device_dir_with_newline_is_exit_2(tmp_path, bbq_dir):
    proc = run_cli("check", "--device", "ssh://pi@127.0.0.1:1", "--device-dir", "x\n!id", "--bbq-dir", str(bbq_dir),
                   "--out", str(tmp_path / "o"))
    assert_input_error(proc, "--device-dir", "control character")


def test_cli_device_host_starting_with_dash_is_exit_2(tmp_path, bbq_dir):
    proc = run_cli("check", "--device", "ssh://-oProxyCommand=id", "--bbq-dir", str(bbq_dir),
                   "--out", str(tmp_path / "o"))
    assert_input_error(proc, "--device", "not starting with '-'")


# ---------------------------------------------------------------- bench children die with their parent

_PARENT = textwrap.dedent("""
    import signal, sys
    from pathlib import Path
    import gate.measure.harness as harness
    harness.CHILD_SCRIPT = Path(sys.argv[1])
    if sys.argv[3] == "cli-handler":  # what `prunegate` installs: SIGTERM becomes KeyboardInterrupt
        from gate.cli.main import _interrupt
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        harness.run_local_child("dense", {"pid_file": sys.argv[2]}, timeout_s=120)
    except KeyboardInterrupt:
        sys.exit(130)
""")

_SLEEPER = textwrap.dedent("""
    import json, os, sys, time
    req = json.loads(sys.stdin.read())
    open(req["pid_file"], "w").write(str(os.getpid()))
    time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie waiting for a (container) init to reap it is dead


def _start_parent(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, int]:
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text(_SLEEPER)
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(sleeper), str(pid_file), mode], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (pid_file.exists() and pid_file.read_text()):
        assert parent.poll() is None, parent.stderr.read()
        assert time.time() < deadline, "the benchmark child did not start"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert _alive(child)
    return parent, child


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.parametrize("mode, sig", [("default", signal.SIGKILL), ("default", signal.SIGTERM),
                                       ("cli-handler", signal.SIGKILL)])
def test_bench_child_dies_when_the_parent_dies(tmp_path, mode, sig):
    parent, child = _start_parent(tmp_path, mode)
    try:
        parent.send_signal(sig)
        parent.wait(timeout=10)
        assert parent.returncode == -sig
        assert _gone_within(child, 5), f"bench child {child} outlived its parent ({sig.name})"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


def test_sigterm_through_the_cli_handler_is_an_orderly_interrupt(tmp_path):
    """SIGTERM becomes KeyboardInterrupt in the parent (as `prunegate` installs it): the child is killed and reaped
    before the exception propagates, and the parent exits 130."""
    parent, child = _start_parent(tmp_path, "cli-handler")
    try:
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=10)
        assert parent.returncode == 130, parent.stderr.read()
        assert not _alive(child)  # already reaped by run_local_child, not left to the kernel
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)

