"""One rule for every secret file: the vivenu token, the mesh key, the mesh credentials, the
kiosk PIN hash. systemd's LoadCredential files (root's, 0400/0440) are accepted; a file
others may write, or every user may read, is refused naming the setting and the path."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scanner.config import MeshConfig, load_config
from scanner.errors import ConfigError
from scanner.kiosk.auth import PinHash, hash_pin
from scanner.mesh.broker_settings import MeshSettings, read_credentials
from scanner.mesh.message import load_key
from scanner.secret_file import SecretFileMissing, check_secret_file, read_secret

SECRET = "s3cr3t-value-0123456789"
NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand files to others")


def token(path: Path) -> Any:
    return load_config(env={"GATE_API_TOKEN_FILE": str(path)}).api.token.reveal()


def credentials(path: Path) -> Any:
    return read_credentials(str(path))[1].reveal()


# setting, what the file holds, how the gate reads it, what it reads back
READERS: list[tuple[str, str, Callable[[Path], Any], Any]] = [
    ("GATE_API_TOKEN_FILE", SECRET, token, SECRET),
    ("mesh.key_file", SECRET, load_key, SECRET.encode()),
    ("mesh.credentials_file", f"north-1:{SECRET}", credentials, SECRET),
]
IDS = [r[0] for r in READERS]


def secret_file(tmp_path: Path, text: str, mode: int, uid: int | None = None,
                gid: int | None = None) -> Path:
    path = tmp_path / "secret"
    path.write_text(text + "\n")
    if uid is not None:
        os.chown(path, uid, uid if gid is None else gid)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(("setting", "text", "read", "expected"), READERS, ids=IDS)
def test_a_private_file_of_ours_is_read(tmp_path: Path, setting: str, text: str,
                                        read: Callable[[Path], Any], expected: Any) -> None:
    assert read(secret_file(tmp_path, text, 0o600)) == expected


@as_root
@pytest.mark.parametrize("mode", [0o400, 0o440])
@pytest.mark.parametrize("gid", [0, NOBODY])  # group root, or the service's own group
@pytest.mark.parametrize(("setting", "text", "read", "expected"), READERS, ids=IDS)
def test_a_root_owned_systemd_credential_is_accepted(
        tmp_path: Path, setting: str, text: str, read: Callable[[Path], Any], expected: Any,
        mode: int, gid: int) -> None:
    assert read(secret_file(tmp_path, text, mode, uid=0, gid=gid)) == expected


@as_root
@pytest.mark.parametrize(("mode", "why"), [(0o620, "writable by others"),
                                           (0o602, "writable by others"),
                                           (0o644, "readable by others"),
                                           (0o640, "readable by others")])
@pytest.mark.parametrize(("setting", "text", "read", "expected"), READERS, ids=IDS)
def test_a_file_of_another_user_that_others_may_write_or_read_is_refused(
        tmp_path: Path, setting: str, text: str, read: Callable[[Path], Any], expected: Any,
        mode: int, why: str) -> None:
    path = secret_file(tmp_path, text, mode, uid=NOBODY)
    with pytest.raises(ConfigError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{setting}: {path} is {why}")
    assert f"chmod 600 {path}" in message
    assert SECRET not in message


@pytest.mark.parametrize("mode", [0o604, 0o660])
def test_a_file_of_ours_that_others_may_read_or_write_is_refused(tmp_path: Path,
                                                                mode: int) -> None:
    with pytest.raises(ConfigError, match="by others"):
        read_secret(secret_file(tmp_path, SECRET, mode), "mesh.key_file")


@as_root
def test_a_group_readable_file_in_the_credentials_directory_is_accepted(tmp_path: Path) -> None:
    """systemd may hand the credential to the service's own user, group-readable."""
    path = secret_file(tmp_path, SECRET, 0o440, uid=NOBODY)
    assert read_secret(path, "mesh.key_file", credentials_dir=str(tmp_path)).strip() == \
        SECRET.encode()
    with pytest.raises(ConfigError, match="readable by others"):
        read_secret(path, "mesh.key_file", credentials_dir=str(tmp_path / "elsewhere"))


def test_a_missing_file_names_the_setting_but_not_the_path() -> None:
    pasted = "/tmp/eyJhbGciOi.s3cr3t-value"
    with pytest.raises(SecretFileMissing) as info:
        read_secret(pasted, "mesh.credentials_file")
    assert str(info.value).startswith("mesh.credentials_file: no such file")
    assert pasted not in str(info.value)


def test_a_directory_or_a_huge_file_is_not_a_secret_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        read_secret(tmp_path, "mesh.key_file")
    huge = secret_file(tmp_path, "x" * 100_000, 0o600)
    with pytest.raises(ConfigError, match="larger than"):
        read_secret(huge, "mesh.key_file")


def test_the_tls_client_key_is_checked_by_the_same_rule(tmp_path: Path) -> None:
    key = secret_file(tmp_path, SECRET, 0o644)
    with pytest.raises(ConfigError, match=r"^mesh\.client_key_file: .* readable by others"):
        check_secret_file(key, "mesh.client_key_file")
    venue = tmp_path / "venue.key"
    venue.write_text(SECRET)
    venue.chmod(0o600)
    mesh = MeshConfig(url="mqtts://broker.lan:8883", key_file=str(venue), cert_file=str(key),
                      client_key_file=str(key))
    with pytest.raises(ConfigError, match=r"^mesh\.client_key_file: "):
        MeshSettings.from_config(mesh)
    key.chmod(0o600)
    assert MeshSettings.from_config(mesh).cert_key_file == str(key)


def test_a_kiosk_pin_file_follows_the_rule_and_may_be_absent(tmp_path: Path) -> None:
    pin = secret_file(tmp_path, hash_pin("2468"), 0o644)
    with pytest.raises(ConfigError, match=r"^web\.pin_file: .* readable by others"):
        PinHash.load(pin)
    pin.chmod(0o600)
    loaded = PinHash.load(pin)
    assert loaded is not None and loaded.matches("2468")
    assert PinHash.load(tmp_path / "none") is None
