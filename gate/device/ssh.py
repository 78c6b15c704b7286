"""SSH transport to a measurement device, through the system's OpenSSH client (``ssh`` and ``sftp``).

Nothing here speaks the SSH protocol itself: every connection is an ``ssh``/``sftp`` subprocess with
``BatchMode=yes`` (never a password prompt), ``ConnectTimeout``, ``StrictHostKeyChecking=yes`` (or
``accept-new`` when the user trusts a new host on first use), and optionally ``UserKnownHostsFile`` and
``IdentityFile``; keys in ``ssh-agent`` work as usual. Failures are turned into one-line errors:

- :class:`gate.runtime.errors.InputError` (the user must fix the setup; exit 2): a bad URL, an unknown or changed
  host key, failed authentication, an unreachable host, a device without ``python3``/``numpy``/``onnxruntime``;
- :class:`DeviceError` (the run failed on the device; exit 4): a command timeout, the device running out of
  memory or disk, a crash of the remote process.

Files are copied once: before copying, the device hashes what it already has (SHA-256) and only missing or
different files are sent. What this run copied is removed again by :meth:`SshDevice.cleanup` unless
``keep`` is set.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from exporters.digest import sha256_file
from gate.runtime.errors import InputError

INSTALL_HINT = "install them on the device: python3 -m pip install numpy onnxruntime"
"""What to tell a user whose device lacks the runner's dependencies."""

_STDERR_TAIL = 5
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
_HOST = re.compile(r"[A-Za-z0-9._:%-]+", re.ASCII)
_USER = re.compile(r"[A-Za-z0-9._+@\\-]+", re.ASCII)
_DISK_MARGIN_BYTES = 16 * 2**20


class DeviceError(RuntimeError):
    """A command failed on the device (timeout, out of memory, out of disk, crash); the message is one line."""


@dataclass(frozen=True)
class SshTarget:
    """Where the device is: ``ssh://[user@]host[:port]``.

    Attributes:
        host: host name or IP address (IPv6 without brackets).
        user: login name (``None``: ssh's default, i.e. the local user or the ssh config's ``User``).
        port: TCP port of the device's sshd.
    """

    host: str
    user: str | None = None
    port: int = 22

    @property
    def destination(self) -> str:
        """The ``[user@]host`` argument of ``ssh``/``sftp``."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def url(self) -> str:
        """The canonical ``ssh://`` URL (recorded in reports)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{urllib.parse.quote(self.user, safe='')}@" if self.user else ""
        return f"ssh://{user}{host}:{self.port}"


def parse_ssh_url(url: str, option: str = "--device") -> SshTarget:
    """Parse ``ssh://[user@]host[:port]`` (a bare ``[user@]host[:port]`` is read the same way).

    Args:
        url: the device URL.
        option: the option or profile field it came from, for the error message.

    Returns:
        the target.

    Raises:
        InputError: another scheme, no host, a path/query/password part, a port that is not a number in
            1..65535, a control character, or a user or host that is empty, starts with ``-`` (ssh would read it
            as an option) or holds characters a login name or host name cannot have.
    """
    hint = "use ssh://user@host[:port], e.g. ssh://pi@192.168.1.20:22"
    url = url.strip()
    if _CONTROL.search(url):
        raise InputError(f"{option} {url!r}: contains a control character (newline, tab, ...); {hint}")
    if "://" not in url:  # a bare ssh destination, [user@]host[:port], as a profile's device field may hold
        url = "ssh://" + url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "ssh":
        raise InputError(f"{option} {url!r}: not an ssh:// URL; {hint}")
    hostport = parts.netloc.rpartition("@")[2]
    after_host = hostport.rpartition("]")[2] if hostport.startswith("[") else hostport
    raw_port = after_host.partition(":")[2] if ":" in after_host else None  # urllib would read ":" as 22, ":0" as 22
    if raw_port is not None and not _PORT.fullmatch(raw_port):
        raise InputError(f"{option} {url!r}: the port must be a number in 1..65535 (ASCII digits); {hint}")
    port = int(raw_port) if raw_port is not None else 22
    if not parts.hostname:
        raise InputError(f"{option} {url!r}: no host name; {hint}")
    if parts.password is not None:
        raise InputError(f"{option} {url!r}: passwords are not accepted (BatchMode); use a key or ssh-agent")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InputError(f"{option} {url!r}: unexpected path or query; {hint} (the remote directory is --device-dir)")
    if not 1 <= port <= 65535:
        raise InputError(f"{option} {url!r}: the port must be in 1..65535; {hint}")
    host = parts.hostname
    if host.startswith("-") or not _HOST.fullmatch(host):
        raise InputError(f"{option} {url!r}: host {host!r} is not a host name or IP address (letters, digits, '.', "
                         f"'-', '_', ':' for IPv6; not starting with '-'); {hint}")
    user = None
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username, errors="strict")
        if not user or user.startswith("-") or not _USER.fullmatch(user):
            raise InputError(f"{option} {url!r}: user {user!r} is not a login name (letters, digits, '.', '_', '-', "
                             f"'+', '@', '\\'; not empty, not starting with '-'); {hint}")
    return SshTarget(host=host, user=user, port=port)


@dataclass(frozen=True)
class SshOptions:
    """How to connect and where to work on the device.

    Attributes:
        identity_file: private key (``IdentityFile``, with ``IdentitiesOnly=yes``); ``None``: ssh's defaults
            and ``ssh-agent``.
        known_hosts: ``UserKnownHostsFile``; ``None``: ssh's default (``~/.ssh/known_hosts``).
        trust_new_host: ``StrictHostKeyChecking=accept-new`` (trust on first use: an unknown host key is
            recorded; a *changed* key is still refused) instead of ``yes``.
        connect_timeout_s: ``ConnectTimeout`` in seconds.
        command_timeout_s: wall-clock limit of one remote command, in seconds (also enforced on the device
            with ``timeout`` when the device has it, so nothing keeps running there).
        python: the device's Python interpreter (command name or absolute path).
        remote_dir: working directory on the device, relative to the login's home unless absolute.
        keep: keep the copied files on the device after the run (later runs then skip them).
        ssh_config: ``ssh -F`` file (``None``: ssh's default configuration).
        multiplex: share one authenticated connection between commands (OpenSSH ``ControlMaster``).
    """

    identity_file: Path | None = None
    known_hosts: Path | None = None
    trust_new_host: bool = False
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 3600.0
    python: str = "python3"
    remote_dir: str = ".cache/prunegate-device"
    keep: bool = False
    ssh_config: str | None = None
    multiplex: bool = True


def _tail(text: str | bytes | None, n: int = _STDERR_TAIL) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [line.strip() for line in (text or "").strip().splitlines() if line.strip()][-n:]


def _last_line(text: str | bytes | None) -> str:
    lines = _tail(text, 1)
    return lines[0] if lines else "(no error output)"


def classify_connection_failure(target: SshTarget, options: SshOptions, stderr: str) -> Exception:
    """The error for an ``ssh``/``sftp`` exit status 255 (the connection itself failed).

    Args:
        target: the device.
        options: connection options (named in the fix).
        stderr: the client's stderr.

    Returns:
        an :class:`InputError` (host key, authentication, unreachable host) or a :class:`DeviceError`.
    """
    url = target.url
    low = stderr.lower()
    known = str(options.known_hosts) if options.known_hosts else "~/.ssh/known_hosts"
    keyscan = f"ssh-keyscan -p {target.port} {target.host} >> {known}"
    if "remote host identification has changed" in low:
        return InputError(f"--device {url}: the host key CHANGED since it was recorded in {known} (possible "
                          f"man-in-the-middle); verify the device, then remove the old key (ssh-keygen -R "
                          f"'[{target.host}]:{target.port}' -f {known})")
    if "host key verification failed" in low or "no host key is known" in low or "host key is known" in low:
        return InputError(f"--device {url}: host key not in {known} (strict host key checking); verify and add it "
                          f"({keyscan}) or pass --device-trust-new-host to trust it on first use")
    if "permission denied" in low or "too many authentication failures" in low:
        key = f"key {options.identity_file}" if options.identity_file else "ssh-agent/default keys"
        return InputError(f"--device {url}: authentication failed with {key}; pass --device-identity FILE with a "
                          f"key in the device's authorized_keys, or load it into ssh-agent")
    for needle in ("connection refused", "connection timed out", "operation timed out", "no route to host",
                   "could not resolve hostname", "network is unreachable", "connection closed by",
                   "connection reset"):
        if needle in low:
            return InputError(f"--device {url}: cannot connect ({_last_line(stderr)}); check the host, the port "
                              f"and that sshd runs (ConnectTimeout {options.connect_timeout_s:g} s)")
    return DeviceError(f"--device {url}: ssh failed: {_last_line(stderr)}")


def classify_remote_failure(what: str, returncode: int, stderr: str, python: str) -> Exception:
    """The error for a remote command that ran but failed (exit status other than 0 and 255).

    Args:
        what: what was being done, e.g. ``"BBQ scoring of dense"``.
        returncode: the remote command's exit status.
        stderr: its stderr.
        python: the device Python command (named in a missing-Python error).

    Returns:
        :class:`InputError` for a missing interpreter; :class:`DeviceError` for a timeout (status 124 from
        ``timeout``), out of disk, out of memory (a Python ``MemoryError``, ``std::bad_alloc``, ORT allocation
        failures, or SIGKILL = status 137, the OOM killer's signal), or any other failure (its last stderr line).
    """
    low = stderr.lower()
    if returncode == 127 and ("not found" in low or "no such file" in low):
        return InputError(f"the device has no Python at {python!r}; install python3 there (e.g. sudo apt-get "
                          f"install python3 python3-pip), then {INSTALL_HINT}; or pass --device-python PATH")
    if returncode == 124:
        return DeviceError(f"{what} timed out on the device (command timeout); raise --device-timeout or use a smaller suite")
    if "no space left on device" in low or "disk quota exceeded" in low:
        return DeviceError(f"{what}: the device ran out of disk space ({_last_line(stderr)}); free space in "
                           f"--device-dir or point it at a larger filesystem")
    if any(s in low for s in ("memoryerror", "bad_alloc", "cannot allocate memory", "failed to allocate memory",
                              "out of memory")) or returncode in (137, -9):
        return DeviceError(f"{what}: the device ran out of memory (exit status {returncode}: "
                           f"{_last_line(stderr)}); use a smaller model or a device with more RAM")
    return DeviceError(f"{what} failed on the device (exit status {returncode}): {_last_line(stderr)}")


def check_path_text(value: str, what: str) -> str:
    """``value`` if it is usable in an ssh option or an sftp batch line: no control character (newline, CR, tab, NUL...).

    Args:
        value: a path or name.
        what: the option or file it came from, named in the error.

    Raises:
        InputError: ``value`` holds a control character (a newline would start a new sftp batch command, and
            ``!command`` lines run on this host).
    """
    if _CONTROL.search(value):
        raise InputError(f"{what} {value!r}: contains a control character (newline, tab, ...); use a path without them")
    return value


def sftp_quote(path: str, what: str) -> str:
    """``path`` as one argument of an sftp batch line, taken literally.

    OpenSSH ``sftp`` splits batch lines itself (``makeargv`` in ``sftp.c``): inside double quotes, ``\\"`` is a
    quote, ``\\\\`` a backslash, and glob characters (``*``, ``?``, ``[``) are escaped before globbing, so a quoted
    path is taken literally (``tests/test_integrity_inputs.py`` copies such names through a real sftp). What quoting
    cannot protect is refused or rewritten: a control character (a newline would end the line and start another
    command; ``!command`` runs on this host) is an :class:`InputError`, and a path starting with ``-`` gets ``./``
    so that the command does not read it as a flag.

    Raises:
        InputError: a control character in ``path`` (see :func:`check_path_text`).
    """
    check_path_text(path, what)
    if path.startswith("-"):
        path = "./" + path
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SshDevice:
    """A device reached with the system's ``ssh``/``sftp``.

    Args:
        target: where the device is.
        options: connection and working-directory options.
        log: progress lines.

    Raises:
        InputError: the identity or known-hosts file does not exist, ``ssh``/``sftp`` are not installed, or
            ``remote_dir`` is unusable.
    """

    def __init__(self, target: SshTarget, options: SshOptions = SshOptions(), log: Callable[[str], None] = print):
        import shutil

        self.target = target
        self.options = options
        self.log = log
        for tool in ("ssh", "sftp"):
            if shutil.which(tool) is None:
                raise InputError(f"--device {target.url}: the OpenSSH client '{tool}' is not installed on this host; "
                                 "install it (apt-get install openssh-client)")
        if options.identity_file is not None and not Path(options.identity_file).is_file():
            raise InputError(f"--device-identity {options.identity_file}: no such file; pass the private key file")
        if options.known_hosts is not None and not Path(options.known_hosts).parent.is_dir():
            raise InputError(f"--device-known-hosts {options.known_hosts}: its directory does not exist")
        check_path_text(options.remote_dir, "--device-dir")
        check_path_text(options.python, "--device-python")
        for value, name in ((options.identity_file, "--device-identity"), (options.known_hosts, "--device-known-hosts")):
            if value is not None:
                check_path_text(str(value), name)
                if '"' in str(value):
                    raise InputError(f"{name} {value}: contains '\"', which ssh options cannot carry; use a path without it")
        remote = options.remote_dir.strip()
        remote = remote.removeprefix("~/")
        if not remote or remote.startswith(("~", "-")) or ".." in PurePosixPath(remote).parts:
            raise InputError(f"--device-dir {options.remote_dir!r}: give a directory relative to the device "
                             "login's home (e.g. .cache/prunegate-device) or an absolute path, without '..' and "
                             "not starting with '-'")
        self.remote_dir = PurePosixPath(remote)
        self._created: list[str] = []
        self._control: str | None = None
        self._control_dir: str | None = None

    # ---- command lines
    def client_options(self) -> list[str]:
        """The ``-o`` options shared by ``ssh`` and ``sftp`` (port excluded: ``-p`` vs ``-P``)."""
        o = self.options
        opts = [
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={max(1, round(o.connect_timeout_s))}",
            "-o", f"StrictHostKeyChecking={'accept-new' if o.trust_new_host else 'yes'}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4",
            "-o", "LogLevel=ERROR",
        ]
        if o.ssh_config:
            opts = ["-F", o.ssh_config, *opts]
        if o.known_hosts is not None:
            opts += ["-o", f"UserKnownHostsFile={o.known_hosts}"]
        if o.identity_file is not None:
            opts += ["-o", f"IdentityFile={o.identity_file}", "-o", "IdentitiesOnly=yes"]
        if self._control is not None:  # reuse the master connection (falls back to a new one if it is gone)
            opts += ["-o", f"ControlPath={self._control}", "-o", "ControlMaster=no"]
        return opts

    def ssh_argv(self, command: str) -> list[str]:
        """``ssh`` argv that runs the shell ``command`` on the device."""
        self._ensure_master()
        return ["ssh", *self.client_options(), "-p", str(self.target.port), "--", self.target.destination, command]

    def _ensure_master(self) -> None:
        """Start (or restart) one shared master connection, so each command does not pay a new SSH handshake.

        OpenSSH connection multiplexing (``ControlMaster``/``ControlPath``, ``ssh -M -N -f``): the master
        authenticates once and goes to the background; later ``ssh``/``sftp`` runs open channels on it. Its stderr
        goes to a file, not a pipe (a backgrounded master would otherwise hold the pipe open). It exits after
        ``ControlPersist`` idle seconds or at :meth:`close`.

        Raises:
            InputError, DeviceError: the connection failed (see :func:`classify_connection_failure`).
        """
        if not self.options.multiplex:
            return
        if self._control is not None and os.path.exists(self._control):
            return
        import tempfile

        if self._control_dir is None:
            self._control_dir = tempfile.mkdtemp(prefix="pg-ssh-")  # short: socket paths are limited to ~100 bytes
        path = os.path.join(self._control_dir, "master")
        self._control = None
        argv = ["ssh", *self.client_options(), "-p", str(self.target.port), "-M", "-N", "-f",
                "-o", f"ControlPath={path}", "-o", "ControlPersist=300", "--", self.target.destination]
        with tempfile.TemporaryFile(mode="w+") as err:
            try:
                proc = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                      timeout=self.options.connect_timeout_s + 30)
            except subprocess.TimeoutExpired:
                raise InputError(f"--device {self.target.url}: cannot connect (no answer within "
                                 f"{self.options.connect_timeout_s:g} s); check the host, the port and that sshd runs") from None
            err.seek(0)
            stderr = err.read()
        if proc.returncode != 0:
            raise classify_connection_failure(self.target, self.options, stderr or f"exit status {proc.returncode}")
        self._control = path

    def close(self) -> None:
        """Stop the shared master connection (``ssh -O exit``); never raises."""
        if self._control is not None and os.path.exists(self._control):
            subprocess.run(["ssh", "-o", f"ControlPath={self._control}", "-O", "exit", "--", self.target.destination],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
        self._control = None
        if self._control_dir is not None:
            import shutil

            shutil.rmtree(self._control_dir, ignore_errors=True)
            self._control_dir = None

    def python_command(self, args: Sequence[str], timeout_s: float | None = None, env: dict[str, str] | None = None,
                       cwd: str | None = None) -> str:
        """A remote shell command running the device Python (with ``-B``: no bytecode files) with ``args``.

        Args:
            args: arguments after the interpreter (quoted here).
            timeout_s: enforced on the device with coreutils/busybox ``timeout`` (exit status 124) when present.
            env: environment variables for the interpreter.
            cwd: remote directory to run in (relative to the home directory unless absolute).
        """
        # -B: write no __pycache__ on the device, so the cleanup leaves nothing behind
        cmd = " ".join(shlex.quote(a) for a in (self.options.python, "-B", *args))
        if env:
            cmd = "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " " + cmd
        if timeout_s:
            t = max(1, int(timeout_s))
            cmd = (f"if command -v timeout >/dev/null 2>&1; then exec timeout -k 10 {t} {cmd}; "
                   f"else exec {cmd}; fi")
        if cwd:
            cmd = f"cd {shlex.quote(cwd)} && {{ {cmd}; }}"
        return cmd

    # ---- running
    def _connection_check(self, proc_rc: int, stderr: str) -> None:
        if proc_rc == 255:
            raise classify_connection_failure(self.target, self.options, stderr)

    def run(self, command: str, what: str, input_text: str | None = None, timeout_s: float | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command on the device and wait for it.

        Args:
            command: remote shell command.
            what: what it does, for error messages.
            input_text: sent to its stdin.
            timeout_s: local wall-clock limit (default ``command_timeout_s`` + connect timeout + 30 s).
            check: raise on a non-zero exit status.

        Returns:
            the completed process (text mode).

        Raises:
            InputError, DeviceError: see the module docstring.
        """
        limit = timeout_s or (self.options.command_timeout_s + self.options.connect_timeout_s + 30)
        try:
            proc = subprocess.run(self.ssh_argv(command), check=False, input=input_text if input_text is not None else "",
                                  capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{what} on {self.target.url} timed out after {limit:g} s; raise --device-timeout") from None
        self._connection_check(proc.returncode, proc.stderr)
        if check and proc.returncode != 0:
            raise classify_remote_failure(what, proc.returncode, proc.stderr, self.options.python)
        return proc

    def stream(self, command: str, what: str, input_text: str, on_line: Callable[[str], None],
               timeout_s: float | None = None) -> None:
        """Run a remote command and hand each stdout line to ``on_line`` as it arrives.

        Used for long jobs whose results stream back item by item, so that an interrupted run keeps what
        already arrived. The local ``ssh`` is killed at the deadline.

        Raises:
            InputError, DeviceError: see the module docstring; also whatever ``on_line`` raises (the remote
            command is then stopped).
        """
        limit = timeout_s or (self.options.command_timeout_s + self.options.connect_timeout_s + 30)
        proc = subprocess.Popen(self.ssh_argv(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1)
        err_chunks: list[str] = []
        timed_out = threading.Event()

        def read_err() -> None:
            err_chunks.extend(proc.stderr)  # type: ignore[arg-type]

        def feed() -> None:
            try:
                proc.stdin.write(input_text)  # type: ignore[union-attr]
                proc.stdin.close()  # type: ignore[union-attr]
            except (BrokenPipeError, OSError):
                pass

        def kill() -> None:
            timed_out.set()
            proc.kill()

        threads = [threading.Thread(target=read_err, daemon=True), threading.Thread(target=feed, daemon=True)]
        for t in threads:
            t.start()
        timer = threading.Timer(limit, kill)
        timer.start()
        try:
            for line in proc.stdout:  # type: ignore[union-attr]
                if line.strip():
                    on_line(line)
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
            for t in threads:
                t.join(timeout=5)
        stderr = "".join(err_chunks)
        if timed_out.is_set():
            raise DeviceError(f"{what} on {self.target.url} timed out after {limit:g} s; raise --device-timeout")
        self._connection_check(proc.returncode, stderr)
        if proc.returncode != 0:
            raise classify_remote_failure(what, proc.returncode, stderr, self.options.python)

    def run_python(self, args: Sequence[str], what: str, input_text: str = "", cwd: str | None = None,
                   env: dict[str, str] | None = None) -> str:
        """Run the device Python with ``args`` (command timeout enforced on both ends); return its stdout."""
        t = self.options.command_timeout_s
        cmd = self.python_command(args, timeout_s=t, env=env, cwd=cwd)
        return self.run(cmd, what, input_text=input_text, timeout_s=t + self.options.connect_timeout_s + 30).stdout

    # ---- files
    def remote_path(self, rel: str | PurePosixPath) -> str:
        """Device path of ``rel`` under the working directory."""
        return str(self.remote_dir / rel)

    _CHECK = (
        "import hashlib, json, os, shutil, sys\n"
        "req = json.load(sys.stdin)\n"
        "missing = []\n"
        "for path, digest in req['files'].items():\n"
        "    h = hashlib.sha256()\n"
        "    try:\n"
        "        with open(path, 'rb') as f:\n"
        "            for b in iter(lambda: f.read(1 << 20), b''):\n"
        "                h.update(b)\n"
        "    except OSError:\n"
        "        missing.append(path); continue\n"
        "    if h.hexdigest() != digest:\n"
        "        missing.append(path)\n"
        "d = req['dir']\n"
        "while d and not os.path.isdir(d):\n"
        "    d = os.path.dirname(d)\n"
        "free = shutil.disk_usage(d or '.').free\n"
        "print(json.dumps({'missing': missing, 'free_bytes': free}))\n"
    )

    def _remote_missing(self, files: dict[str, str]) -> tuple[set[str], int]:
        out = self.run_python(["-c", self._CHECK], "checking files on the device",
                              input_text=json.dumps({"files": files, "dir": str(self.remote_dir)}))
        try:
            res = json.loads(out.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            raise DeviceError(f"checking files on {self.target.url}: unexpected output {out[:200]!r}") from None
        return set(res["missing"]), int(res["free_bytes"])

    def sync(self, files: Sequence[tuple[Path, str]]) -> dict:
        """Copy local files to the device unless it already has them with the same SHA-256.

        Args:
            files: ``(local path, device path relative to remote_dir)`` pairs.

        Returns:
            ``{"files", "sent", "skipped", "bytes_sent", "bytes_skipped", "seconds"}`` (bytes and wall seconds of
            this call, including hashing on both sides).

        Raises:
            DeviceError: not enough free disk on the device (checked before copying), a failed or corrupted copy.
            InputError: connection problems (see :meth:`run`).
        """
        t0 = time.perf_counter()
        wanted = {self.remote_path(rel): (Path(local), sha256_file(local)) for local, rel in files}
        missing, free = self._remote_missing({r: d for r, (_, d) in wanted.items()})
        need = sum(wanted[r][0].stat().st_size for r in missing)
        if missing and need + _DISK_MARGIN_BYTES > free:
            raise DeviceError(f"the device has {free / 1e6:.0f} MB free under {self.remote_dir}, the artifacts need "
                              f"{need / 1e6:.0f} MB; free space or point --device-dir at a larger filesystem")
        if missing:
            self._sftp_put([(wanted[r][0], r) for r in sorted(missing)], need)
            self._created.extend(sorted(missing))
            still, _ = self._remote_missing({r: wanted[r][1] for r in missing})
            if still:
                raise DeviceError(f"copy to {self.target.url} corrupted {len(still)} file(s) (SHA-256 differs), "
                                  f"e.g. {min(still)}")
        total = sum(p.stat().st_size for p, _ in wanted.values())
        return {"files": len(wanted), "sent": len(missing), "skipped": len(wanted) - len(missing),
                "bytes_sent": need, "bytes_skipped": total - need, "seconds": time.perf_counter() - t0}

    def _sftp_put(self, pairs: list[tuple[Path, str]], need: int) -> None:
        dirs: list[str] = []
        for _, remote in pairs:
            for parent in reversed(PurePosixPath(remote).parents):
                if str(parent) not in (".", "/") and str(parent) not in dirs:
                    dirs.append(str(parent))
        batch = [f"-mkdir {sftp_quote(d, 'device path')}" for d in dirs]
        batch += [f"put {sftp_quote(os.path.abspath(local), 'artifact file')} {sftp_quote(remote, 'device path')}"
                  for local, remote in pairs]
        self._ensure_master()
        argv = ["sftp", "-q", "-b", "-", *self.client_options(), "-P", str(self.target.port), "--", self.target.destination]
        # Transfer budget: the command timeout, at least 60 s plus 1 s per MB.
        limit = max(self.options.command_timeout_s, 60 + need / 1e6)
        self.log(f"device: copying {len(pairs)} file(s), {need / 1e6:.1f} MB to {self.target.url}")
        try:
            proc = subprocess.run(argv, check=False, input="\n".join(batch) + "\n", capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"copying to {self.target.url} timed out after {limit:g} s") from None
        self._connection_check(proc.returncode, proc.stderr)
        if proc.returncode != 0:
            _, free = self._remote_missing({})
            if free < _DISK_MARGIN_BYTES or "no space" in proc.stderr.lower():
                raise DeviceError(f"copying to {self.target.url}: the device ran out of disk space ({free / 1e6:.0f} MB "
                                  "free); free space or point --device-dir at a larger filesystem")
            raise DeviceError(f"copying to {self.target.url} failed: {_last_line(proc.stderr)}")

    _CLEANUP = (
        "import json, os, sys\n"
        "req = json.load(sys.stdin)\n"
        "for p in req['files']:\n"
        "    try: os.remove(p)\n"
        "    except OSError: pass\n"
        "for d in sorted({os.path.dirname(p) for p in req['files']} | set(req['dirs']), key=len, reverse=True):\n"
        "    while d and d != req['root'] and d.startswith(req['root']):\n"
        "        try: os.rmdir(d)\n"
        "        except OSError: break\n"
        "        d = os.path.dirname(d)\n"
        "try: os.rmdir(req['root'])\n"
        "except OSError: pass\n"
    )

    def cleanup(self, extra_dirs: Sequence[str] = ()) -> bool:
        """Remove the files this object copied (and directories left empty) unless ``keep`` is set.

        Files the device already had before this run are left alone. Never raises: a failed cleanup is logged.

        Args:
            extra_dirs: further device directories (relative to ``remote_dir``) to remove if empty.

        Returns:
            True when something was removed or nothing had to be; False when the cleanup failed.
        """
        if self.options.keep:
            if self._created:
                self.log(f"device: keeping {len(self._created)} copied file(s) under {self.remote_dir} (--device-keep)")
            return True
        if not self._created and not extra_dirs:
            return True
        req = {"files": self._created, "dirs": [self.remote_path(d) for d in extra_dirs], "root": str(self.remote_dir)}
        try:
            self.run_python(["-c", self._CLEANUP], "cleaning up the device", input_text=json.dumps(req))
        except (InputError, DeviceError) as exc:
            self.log(f"device: cleanup failed ({exc}); remove {self.remote_dir} on the device by hand")
            return False
        self._created = []
        return True


def device_from_url(url: str, options: SshOptions, log: Callable[[str], None] = print,
                    option: str = "--device") -> SshDevice:
    """Parse ``url`` and build the device (no connection is made yet).

    Raises:
        InputError: a bad URL or options (see :func:`parse_ssh_url`, :class:`SshDevice`).
    """
    return SshDevice(parse_ssh_url(url, option), options, log)


__all__ = [
    "INSTALL_HINT",
    "DeviceError",
    "SshDevice",
    "SshOptions",
    "SshTarget",
    "check_path_text",
    "classify_connection_failure",
    "classify_remote_failure",
    "device_from_url",
    "parse_ssh_url",
    "sftp_quote",
]

