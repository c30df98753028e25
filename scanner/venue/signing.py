"""Supervisor keys: Ed25519, the private half on the supervisor's machine alone.

Every gate holds the venue's HMAC key, so a command "signed" with it could come from any
gate (or anyone who took one): a gate must be able to check a command, never to make one.
An Ed25519 public key (``[mesh] supervisor_key``) does exactly that.

On the wire a command is ``{"command": <body>, "sig": <base64 signature>}``, the signature
over the body's canonical JSON (orjson, sorted keys). ``Verifier.open`` turns a payload
into a ``Command`` or raises ``Dropped`` with its cause, one of ``CAUSES``.

Keys are PEM files (PKCS#8 private, SubjectPublicKeyInfo public), so ``openssl pkey``
reads them too. ``keygen`` writes ``supervisor.key`` (0600, created so: never readable by
others, not even for a moment) and ``supervisor.pub`` (0644), and never overwrites either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from scanner.errors import ConfigError
from scanner.secret_file import read_secret
from scanner.venue.command import Command, Refused, parse

PRIVATE_NAME, PUBLIC_NAME = "supervisor.key", "supervisor.pub"
MAX_COMMAND_BYTES = 16 * 1024  # a command is a few hundred bytes
MAX_KEY_FILE_BYTES = 16 * 1024  # an Ed25519 public key's PEM is 113 bytes
FINGERPRINT_HEX = 16
# Why a payload on a command topic was dropped (the /metrics label).
CAUSES = ("malformed", "unsigned", "bad_signature", "unknown_issuer", "invalid", "oversized")


class Dropped(Exception):
    """A payload that is not a command from the venue's supervisor key."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


def canonical(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def fingerprint(public_raw: bytes) -> str:
    """The issuer name a key signs as: a digest of its raw public bytes."""
    return hashlib.sha256(public_raw).hexdigest()[:FINGERPRINT_HEX]


def keygen(folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """A new key pair in ``folder`` (created 0700 if missing); never overwrites a key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    where = Path(folder).expanduser()
    try:
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot create: {exc.strerror}") from None
    private, public = where / PRIVATE_NAME, where / PUBLIC_NAME
    for path in (private, public):
        if path.exists():
            raise ConfigError(f"{path}: exists already; a new key would strand every gate "
                              f"holding the old public key (remove it first if you mean it)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(private, pem, 0o600)
    _write_new(public, pub, 0o644)
    return private, public


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits the public key should have
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class Signer:
    """The supervisor's private key; ``seal`` makes the wire payload of a command."""

    def __init__(self, path: str | os.PathLike[str], setting: str = "--key") -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        data = read_secret(path, setting)
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise ConfigError(f"{setting}: {Path(path).expanduser()} is not an unencrypted "
                              f"PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{setting}: {Path(path).expanduser()} is not an Ed25519 key")
        self._key = key
        self.issuer = fingerprint(key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    def __repr__(self) -> str:
        return f"Signer(issuer={self.issuer!r})"

    def verifier(self) -> Verifier:
        """What a gate holding this key's public half checks with."""
        return Verifier(self._key.public_key())

    def seal(self, command: Command) -> bytes:
        body = command.body()
        sig = base64.b64encode(self._key.sign(canonical(body))).decode()
        return orjson.dumps({"command": body, "sig": sig})


class Verifier:
    """A gate's copy of the supervisor's public key (``[mesh] supervisor_key``)."""

    def __init__(self, key: Any) -> None:
        from cryptography.hazmat.primitives import serialization

        self._key = key  # an Ed25519PublicKey
        self.issuer = fingerprint(key.public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str],
                  setting: str = "mesh.supervisor_key") -> Verifier:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        file = Path(path).expanduser()
        try:
            with file.open("rb") as fh:
                data = fh.read(MAX_KEY_FILE_BYTES + 1)  # a path to /dev/zero ends here too
        except OSError as exc:
            raise ConfigError(f"{setting}: cannot read {file}: {exc.strerror}") from None
        if len(data) > MAX_KEY_FILE_BYTES:
            raise ConfigError(f"{setting}: {file} is larger than {MAX_KEY_FILE_BYTES} bytes: "
                              f"not a PEM public key")
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError):
            raise ConfigError(f"{setting}: {file} is not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{setting}: {file} is not an Ed25519 public key")
        return cls(key)

    def open(self, payload: bytes) -> Command:
        """The command ``payload`` carries, signed by this key; Dropped otherwise."""
        from cryptography.exceptions import InvalidSignature

        if len(payload) > MAX_COMMAND_BYTES:
            raise Dropped("oversized", f"{len(payload)} bytes")
        try:
            envelope = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise Dropped("malformed", "not JSON") from None
        if not isinstance(envelope, dict):
            raise Dropped("malformed", "not an object")
        if set(envelope) != {"command", "sig"}:
            # The venue's HMAC envelope ({"kind", "body", "mac"}) lands here: any gate holds
            # that key, so it can never order the venue.
            raise Dropped("unsigned", "not signed with a supervisor key")
        body, sig = envelope["command"], envelope["sig"]
        if not isinstance(body, dict) or not isinstance(sig, str):
            raise Dropped("malformed", "command or signature of the wrong type")
        try:
            signed = canonical(body)
        except orjson.JSONEncodeError:  # nested deeper than orjson writes (it reads deeper)
            raise Dropped("malformed", "the command is nested too deeply") from None
        try:
            raw = base64.b64decode(sig, validate=True)
            self._key.verify(raw, signed)
        except (InvalidSignature, binascii.Error, ValueError):
            raise Dropped("bad_signature", "the signature does not match the supervisor "
                                           "key") from None
        try:
            command = parse(body)
        except Refused as exc:
            raise Dropped("invalid", str(exc)) from None
        if command.issuer != self.issuer:
            raise Dropped("unknown_issuer", f"signed as {command.issuer[:32]!r}")
        return command
