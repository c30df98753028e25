"""A secret in its own file, and the one rule for whether that file is private enough.

Every setting that names a secret file reads it here: ``api.token_file``, ``mesh.key_file``,
``mesh.credentials_file``, ``web.pin_file``, ``web.supervisor_pin_file``, and
``mesh.client_key_file`` (checked only: the TLS library opens it itself). The rule, on
the file as opened (no race between the check and the read):

- refused when its group or others may write it: they could replace the secret;
- refused when every user may read it;
- readable by its group only when root owns it or it lies in ``$CREDENTIALS_DIRECTORY``:
  systemd's ``LoadCredential=`` hands a credential to the service there as root's, mode
  0400 or 0440 (group root or the service's);
- otherwise accepted: 0600 or 0400, ours or root's.

Errors are one line naming the setting and the path, never the contents. A path that does
not exist is not shown either: it may be the secret itself, pasted in the wrong place.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from scanner.errors import ConfigError

# Tokens, keys and hashes are a few hundred bytes: a larger file is the wrong file.
MAX_SECRET_BYTES = 64 * 1024
NOT_SHOWN = "(value not shown: it may be the secret itself)"


class SecretFileMissing(ConfigError, FileNotFoundError):
    """The secret file does not exist (the kiosk's PIN file may legitimately be absent)."""


def read_secret(path: str | os.PathLike[str], setting: str, *,
                credentials_dir: str | None = None) -> bytes:
    """The file's bytes, once it passes the rule; ``setting`` names it in every error.
    ``credentials_dir`` defaults to ``$CREDENTIALS_DIRECTORY``."""
    file = _existing(path, setting)
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)  # a FIFO never hangs
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {file}: {exc.strerror}") from None
    try:
        _check(os.fstat(fd), file, setting, credentials_dir)
        data = b""
        while chunk := os.read(fd, MAX_SECRET_BYTES + 1 - len(data)):
            data += chunk
            if len(data) > MAX_SECRET_BYTES:  # it grew since the check
                raise ConfigError(f"{setting}: {file} is larger than {MAX_SECRET_BYTES} "
                                  "bytes: not a secret file")
        return data
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {file}: {exc.strerror}") from None
    finally:
        os.close(fd)


def read_secret_text(path: str | os.PathLike[str], setting: str, *,
                     credentials_dir: str | None = None) -> str:
    """The file's text (UTF-8, without a byte order mark some Windows editors write),
    stripped of surrounding whitespace."""
    data = read_secret(path, setting, credentials_dir=credentials_dir)
    try:
        return data.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{setting}: {Path(path).expanduser()} is not UTF-8 text") from None


def check_secret_file(path: str | os.PathLike[str], setting: str, *,
                      credentials_dir: str | None = None) -> Path:
    """The same rule for a file another library opens (a TLS private key); its path."""
    file = _existing(path, setting)
    try:
        info = file.stat()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {file}: {exc.strerror}") from None
    _check(info, file, setting, credentials_dir)
    return file


def _existing(path: str | os.PathLike[str], setting: str) -> Path:
    file = Path(path).expanduser()
    try:
        file.stat()
    except FileNotFoundError:
        raise SecretFileMissing(f"{setting}: no such file {NOT_SHOWN}") from None
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, a NUL byte: likely a pasted secret
        reason = exc.strerror if isinstance(exc, OSError) else "not a path"
        raise ConfigError(f"{setting}: cannot read the file: {reason} {NOT_SHOWN}") from None
    return file


def _check(info: os.stat_result, file: Path, setting: str, credentials_dir: str | None) -> None:
    mode = stat.S_IMODE(info.st_mode)
    fix = f"(mode {mode:o}); run: chmod 600 {file}"
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{setting}: {file} is not a regular file")
    if info.st_size > MAX_SECRET_BYTES:
        raise ConfigError(f"{setting}: {file} is larger than {MAX_SECRET_BYTES} bytes: "
                          "not a secret file")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"{setting}: {file} is writable by others {fix}")
    if mode & stat.S_IROTH:
        raise ConfigError(f"{setting}: {file} is readable by others {fix}")
    group = mode & stat.S_IRWXG
    root_credential = info.st_uid == 0 and group == stat.S_IRGRP
    if group and not (root_credential or _credential(file, credentials_dir)):
        raise ConfigError(f"{setting}: {file} is readable by others {fix} "
                          "(only a root-owned systemd credential may be group-readable)")


def _credential(file: Path, credentials_dir: str | None) -> bool:
    """Whether ``file`` is one of the credentials systemd handed this service."""
    folder = credentials_dir or os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        return False
    try:
        return file.resolve().is_relative_to(Path(folder).resolve())
    except OSError:
        return False
