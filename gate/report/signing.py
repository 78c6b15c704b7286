"""Signing ``report.json`` and its in-toto statements with an Ed25519 key, offline, as DSSE envelopes.

Format: DSSE v1 (secure-systems-lab/dsse, ``protocol.md`` and ``envelope.md``). The envelope is JSON::

    {"payloadType": TYPE, "payload": base64(BODY),
     "signatures": [{"keyid": KEYID, "sig": base64(Ed25519-Sign(PAE(TYPE, BODY)))}]}

with ``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` (``LEN`` = the byte length as ASCII
decimal, ``SP`` = one space). ``BODY`` is the file's bytes, exactly as written, so any edit of the file (a verdict,
a digest, a space) breaks the signature. Payload types: :data:`REPORT_PAYLOAD_TYPE` for ``report.json``,
:data:`INTOTO_PAYLOAD_TYPE` (``application/vnd.in-toto+json``, in-toto attestation framework
``spec/v1/envelope.md``) for an in-toto Statement v1. ``keyid`` is the hex SHA-256 of the raw 32-byte public key;
DSSE treats it as a hint only, so verification tries the given public key on every signature.

Keys: PEM files, PKCS#8 private key and SubjectPublicKeyInfo public key, e.g. from :func:`generate_keypair` or
``openssl genpkey -algorithm ed25519 -out key.pem`` and ``openssl pkey -in key.pem -pubout -out key.pub.pem``. An
encrypted private key is read with the password in ``$PRUNEGATE_SIGNING_KEY_PASSWORD``. The cryptography is the
``cryptography`` package's (Ed25519, RFC 8032); nothing here goes to the network.

The signature of a file is written beside it as ``<file>.sig`` (:func:`signature_path`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from gate.runtime.errors import InputError

REPORT_PAYLOAD_TYPE = "application/vnd.prunegate.report+json"
"""DSSE ``payloadType`` of a signed ``report.json``."""
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""DSSE ``payloadType`` of a signed in-toto Statement (in-toto ``spec/v1/envelope.md``)."""
PASSWORD_ENV = "PRUNEGATE_SIGNING_KEY_PASSWORD"
"""Environment variable holding the password of an encrypted private key."""
PRIVATE_KEY_NAME = "prunegate-signing-key.pem"
PUBLIC_KEY_NAME = "prunegate-signing-key.pub.pem"


class SignatureError(Exception):
    """A signature does not verify: missing, malformed, made with another key, or over other bytes.

    ``prunegate verify`` reports it as an integrity error (exit 5). The message is one line.
    """


def signature_path(path: str | Path) -> Path:
    """Where the signature of ``path`` is written: ``<path>.sig`` (``report.json`` -> ``report.json.sig``)."""
    p = Path(path)
    return p.with_name(p.name + ".sig")


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding of ``payload_type`` and ``body`` (protocol.md), the bytes signed."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def _public_raw(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key) -> str:
    """The hex SHA-256 of a public key's raw 32 bytes (the envelope's ``keyid``)."""
    return hashlib.sha256(_public_raw(public_key)).hexdigest()


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} {path}: no such file; pass an Ed25519 key in PEM form "
                         "(prunegate report keygen DIR makes a pair)") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot be read ({exc.strerror}); pass a readable PEM file") from None


def load_private_key(path: str | Path):
    """An Ed25519 private key from a PEM file (PKCS#8; encrypted with ``$PRUNEGATE_SIGNING_KEY_PASSWORD``).

    Returns:
        a ``cryptography`` ``Ed25519PrivateKey``.

    Raises:
        InputError: missing or unreadable file, not a PEM private key, a wrong or missing password, not Ed25519.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read(Path(path), "--key")
    password = os.environ.get(PASSWORD_ENV)
    try:
        key = serialization.load_pem_private_key(data, password=password.encode() if password else None)
    except TypeError:
        raise InputError(f"--key {path}: the key is encrypted; set {PASSWORD_ENV} to its password") from None
    except ValueError as exc:
        raise InputError(f"--key {path}: not a readable PEM private key ({exc}); pass an Ed25519 key made by "
                         "prunegate report keygen or openssl genpkey -algorithm ed25519") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"--key {path}: a {type(key).__name__}, not an Ed25519 key; make one with "
                         "openssl genpkey -algorithm ed25519")
    return key


def load_public_key(path: str | Path):
    """An Ed25519 public key from a PEM file (SubjectPublicKeyInfo).

    Raises:
        InputError: missing or unreadable file, not a PEM public key, not Ed25519.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read(Path(path), "--public-key")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise InputError(f"--public-key {path}: not a readable PEM public key ({exc}); pass the .pub.pem of the "
                         "signing key (openssl pkey -in key.pem -pubout)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"--public-key {path}: a {type(key).__name__}, not an Ed25519 public key")
    return key


def generate_keypair(out_dir: str | Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair to ``out_dir``: :data:`PRIVATE_KEY_NAME` (PKCS#8 PEM, unencrypted, mode 0600)
    and :data:`PUBLIC_KEY_NAME` (SubjectPublicKeyInfo PEM).

    Returns:
        ``(private_key_path, public_key_path)``.

    Raises:
        InputError: either file exists already (a key is never overwritten), or ``out_dir`` cannot be written.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = Path(out_dir)
    priv_path, pub_path = out / PRIVATE_KEY_NAME, out / PUBLIC_KEY_NAME
    for p in (priv_path, pub_path):
        if os.path.lexists(p):
            raise InputError(f"keygen {out}: {p.name} exists already; keys are never overwritten, pick another DIR")
    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(priv)
        fd = os.open(pub_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(pub)
    except OSError as exc:
        raise InputError(f"keygen {out}: cannot write the key pair ({exc.strerror}); pass a writable directory") from None
    return priv_path, pub_path


def sign_bytes(body: bytes, payload_type: str, private_key) -> dict:
    """A DSSE envelope over ``body`` (module docstring), signed with ``private_key`` (Ed25519).

    Returns:
        ``{"payloadType", "payload", "signatures": [{"keyid", "sig"}]}`` (base64 standard encoding).
    """
    sig = private_key.sign(pae(payload_type, body))
    return {"payloadType": payload_type, "payload": base64.b64encode(body).decode("ascii"),
            "signatures": [{"keyid": key_id(private_key.public_key()), "sig": base64.b64encode(sig).decode("ascii")}]}


def verify_envelope(envelope_bytes: bytes, body: bytes, payload_type: str, public_key, source: str = "signature") -> None:
    """Check that a DSSE envelope signs exactly ``body`` as ``payload_type`` with ``public_key``.

    Args:
        envelope_bytes: the envelope file's bytes (untrusted).
        body: the bytes that must be signed (e.g. ``report.json`` as read).
        payload_type: the expected ``payloadType``.
        public_key: an Ed25519 public key.
        source: how to name the envelope in errors.

    Raises:
        SignatureError: not a DSSE envelope, another payload type, a payload other than ``body``, or no
            signature that verifies with ``public_key``.
    """
    from cryptography.exceptions import InvalidSignature

    try:
        env = json.loads(envelope_bytes)
        ptype, payload, sigs = env["payloadType"], base64.b64decode(env["payload"], validate=True), env["signatures"]
        raw_sigs = [base64.b64decode(s["sig"], validate=True) for s in sigs]
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"{source}: not a DSSE envelope ({type(exc).__name__}: {exc})") from None
    if ptype != payload_type:
        raise SignatureError(f"{source}: signs a {ptype!r} payload, not {payload_type!r}")
    if payload != body:
        raise SignatureError(f"{source}: signs other bytes than the file (the file was edited after signing)")
    for raw in raw_sigs:
        try:
            public_key.verify(raw, pae(ptype, payload))
            return
        except InvalidSignature:
            continue
    raise SignatureError(f"{source}: no signature verifies with the public key (keyid {key_id(public_key)[:16]}...): "
                         "signed with another key or altered")


@dataclass(frozen=True)
class Signed:
    """One file signed by :func:`sign_report`: ``path`` and its envelope ``signature`` path."""

    path: Path
    signature: Path
    payload_type: str


def intoto_files(report: dict, report_path: Path) -> dict[Path, str]:
    """The in-toto statements prunegate writes for ``report`` (``intoto.json`` or ``intoto-<variant>.json``, beside
    the report) and their expected text (:func:`gate.report.outputs.render_files`)."""
    from gate.report.outputs import render_files

    return {report_path.parent / name: text for name, text in render_files(report, ("intoto",)).items()}


def sign_report(report_path: str | Path, private_key) -> list[Signed]:
    """Sign ``report.json`` and each in-toto statement beside it, writing ``<file>.sig`` (DSSE envelope) for each.

    The report is schema-validated and consistency-checked first (:func:`gate.report.consistency.load_consistent_report`),
    from the same bytes that are signed. Each in-toto statement present must equal the one the report implies
    (:func:`gate.report.intoto.render_intoto`), else nothing is signed; a statement that is absent is skipped.

    Returns:
        what was signed, the report first.

    Raises:
        InputError: an invalid or inconsistent report; a statement that does not match the report, is a symlink
            or cannot be parsed; a signature file that cannot be written.
    """
    from gate.report.consistency import load_consistent_report
    from gate.runtime.atomic import write_text_atomic

    path = Path(report_path)
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"--report {path}: no such file; pass the report.json written by prunegate check") from None
    report = load_consistent_report(path, body)
    todo = [(path, body, REPORT_PAYLOAD_TYPE)]
    for st_path, text in intoto_files(report, path).items():
        if not os.path.lexists(st_path):
            continue
        if st_path.is_symlink() or not st_path.is_file():
            raise InputError(f"{st_path}: not a regular file; remove it or re-render it with "
                             "prunegate report render --format intoto")
        st_body = st_path.read_bytes()
        try:
            same = json.loads(st_body) == json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError):
            same = False
        if not same:
            raise InputError(f"{st_path}: does not match the in-toto statement of {path}; re-render it with "
                             "prunegate report render --format intoto, then sign again")
        todo.append((st_path, st_body, INTOTO_PAYLOAD_TYPE))
    out = []
    for p, b, ptype in todo:
        sig = signature_path(p)
        try:
            write_text_atomic(sig, json.dumps(sign_bytes(b, ptype, private_key), indent=2) + "\n")
        except OSError as exc:
            raise InputError(f"{sig}: cannot be written ({exc.strerror}); sign a report in a writable directory") from None
        out.append(Signed(p, sig, ptype))
    return out


def verify_report_signature(report_path: str | Path, signature: str | Path, public_key) -> bytes:
    """Read ``report.json`` once and check its DSSE envelope; return the bytes that were verified.

    Use the returned bytes (not a second read of the file) as the report, so what is judged is what was signed.

    Raises:
        InputError: ``report_path`` is missing or unreadable.
        SignatureError: the signature file is missing or unreadable, or does not verify (:func:`verify_envelope`).
    """
    path, sig = Path(report_path), Path(signature)
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"--report {path}: no such file; pass the report.json written by prunegate check") from None
    except OSError as exc:
        raise InputError(f"--report {path}: cannot be read ({exc.strerror})") from None
    try:
        envelope = sig.read_bytes()
    except OSError as exc:
        raise SignatureError(f"signature {sig}: cannot be read ({exc.strerror or exc}): the report is not signed "
                             "(prunegate report sign)") from None
    verify_envelope(envelope, body, REPORT_PAYLOAD_TYPE, public_key, f"signature {sig}")
    return body
