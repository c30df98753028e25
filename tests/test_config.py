"""Configuration: TOML plus the fixed GATE_* environment names, errors that name the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scanner.config import GateConfig, Secret, load_config
from scanner.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment() -> None:
    config = load_config(env={})
    assert config == GateConfig()
    assert config.api.url == "https://vivenu.com"
    assert not config.api.token


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path / "gate.toml",
                 'gate_id = "north"\ndb = "a.db"\n[api]\nurl = "https://x"\n')
    env = {"GATE_CONFIG": str(path), "GATE_API_URL": "http://127.0.0.1:9", "GATE_DB": "b.db",
           "GATE_ID": "south", "GATE_EVENTS": " e1, e2 ,", "GATE_API_TOKEN": "tok"}
    config = load_config(env=env)
    assert (config.gate_id, config.db, config.api.url) == ("south", "b.db", "http://127.0.0.1:9")
    assert config.events == ("e1", "e2")
    assert config.api.token.reveal() == "tok"


def test_empty_events_variable_means_all_accessible() -> None:
    assert load_config(env={"GATE_EVENTS": ""}).events == ()


def test_unknown_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path / "gate.toml", "[sync]\npagesize = 10\n")
    expected = r"sync\.pagesize: unknown key \(did you mean page_size\?\)"
    with pytest.raises(ConfigError, match=expected):
        load_config(path, env={})


def test_wrong_type_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "gate.toml", '[sync]\npage_size = "many"\n')
    expected = r"sync\.page_size: expected an integer from 1 to 1000, got 'many'"
    with pytest.raises(ConfigError, match=expected):
        load_config(path, env={})


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "gate.toml", "gate_id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, env={})


def test_a_byte_order_mark_from_a_windows_editor_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_bytes(b'\xef\xbb\xbfgate_id = "north-1"\n')
    assert load_config(path, env={}).gate_id == "north-1"


def test_a_file_that_is_not_utf8_says_so_with_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_bytes(b'gate_id = "caf\xe9"\n')  # Latin-1
    with pytest.raises(ConfigError, match=r"^.*gate\.toml: not UTF-8 text \(byte 0xe9 at "
                                          r"offset 14\); save it as UTF-8$"):
        load_config(path, env={})


def test_arrays_nested_past_the_toml_readers_depth_are_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path / "gate.toml", "gate_id = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"gate\.toml: not valid TOML for a gate: arrays or "
                                          r"tables nested too deep$"):
        load_config(path, env={})


def test_a_config_path_on_an_endless_device_is_refused_after_a_mebibyte() -> None:
    with pytest.raises(ConfigError, match=r"^/dev/zero: more than 1024 KiB: not a gate's "
                                          r"configuration$"):
        load_config("/dev/zero", env={})


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml", env={})


def test_token_in_config_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = write(tmp_path / "gate.toml", '[api]\ntoken = "s3cr3t-value"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "api.token" in str(info.value)
    assert "s3cr3t-value" not in str(info.value)


def test_token_file_must_be_private(tmp_path: Path) -> None:
    token = write(tmp_path / "token", "s3cr3t-value\n")
    os.chmod(token, 0o644)
    with pytest.raises(ConfigError, match="chmod 600") as info:
        load_config(env={"GATE_API_TOKEN_FILE": str(token)})
    assert "s3cr3t-value" not in str(info.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can hand a file to root")
@pytest.mark.parametrize("mode", [0o400, 0o440])
def test_a_systemd_credential_owned_by_root_is_accepted(tmp_path: Path, mode: int) -> None:
    token = write(tmp_path / "token", "s3cr3t-value\n")
    os.chown(token, 0, 0)
    os.chmod(token, mode)
    config = load_config(env={"GATE_API_TOKEN_FILE": str(token)})
    assert config.api.token.reveal() == "s3cr3t-value"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_a_group_readable_token_of_another_owner_is_refused(tmp_path: Path) -> None:
    token = write(tmp_path / "token", "s3cr3t-value\n")
    os.chown(token, 1000, 1000)
    os.chmod(token, 0o440)
    with pytest.raises(ConfigError, match="readable by others"):
        load_config(env={"GATE_API_TOKEN_FILE": str(token)})


def test_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    token = write(tmp_path / "token", "s3cr3t-value\n")
    os.chmod(token, 0o600)
    config = load_config(env={"GATE_API_TOKEN_FILE": str(token)})
    assert config.api.token.reveal() == "s3cr3t-value"


def test_a_token_file_saved_with_a_byte_order_mark_gives_the_token_alone(
        tmp_path: Path) -> None:
    """A BOM is no whitespace to ``str.strip``: kept, it would go out in every request."""
    token = tmp_path / "token"
    token.write_bytes(b"\xef\xbb\xbfs3cr3t-value\r\n")
    os.chmod(token, 0o600)
    config = load_config(env={"GATE_API_TOKEN_FILE": str(token)})
    assert config.api.token.reveal() == "s3cr3t-value"


def test_token_never_shows_in_repr_or_str() -> None:
    config = load_config(env={"GATE_API_TOKEN": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(config)
    assert "s3cr3t-value" not in str(config.api.token)
    assert repr(Secret("x")) == "Secret('***')"


def test_db_path_becomes_sqlite_url_and_urls_pass_through() -> None:
    assert load_config(env={"GATE_DB": "/var/lib/gate/gate.db"}).db_url == \
        "sqlite:////var/lib/gate/gate.db"
    assert load_config(env={"GATE_DB": "postgresql://h/db"}).db_url == "postgresql://h/db"


@pytest.mark.parametrize(("db", "journal"), [
    ("/var/lib/gate/gate.db", "sqlite:////var/lib/gate/gate-journal.db"),
    ("gate.db", "sqlite:///gate-journal.db"),
    ("sqlite+pysqlite:///x/y.db?timeout=5", "sqlite+pysqlite:///x/y-journal.db?timeout=5"),
    ("sqlite://", "sqlite://"),                       # in memory: a memory database of its own
    ("sqlite:///:memory:", "sqlite://"),
    ("postgresql://u:p@h:5432/db", "postgresql://u:p@h:5432/db"),  # a server: the same one
])
def test_the_journal_defaults_to_beside_the_store(db: str, journal: str) -> None:
    assert GateConfig(db=db).journal_db_url == journal


def test_a_journal_db_setting_wins_over_beside_the_store() -> None:
    assert GateConfig(db="gate.db", journal_db="/mnt/j.db").journal_db_url == "sqlite:////mnt/j.db"


def test_list_settings_accept_comma_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "gate.toml", '[policy]\nentries = "north, south"\n')
    assert load_config(path, env={}).policy.entries == ("north", "south")


def test_local_zone_follows_tz_and_falls_back_to_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC

    from scanner.clock import local_zone

    monkeypatch.setenv("TZ", "Europe/Berlin")
    assert str(local_zone()) == "Europe/Berlin"
    monkeypatch.setenv("TZ", "Not/AZone")
    assert local_zone() is UTC


@pytest.mark.parametrize("url", ["https://vivenu.com", "https://vivenu.com/base/",
                                 "http://127.0.0.1:8765", "http://localhost:9", "http://[::1]:9"])
def test_https_and_loopback_http_urls_are_accepted(url: str) -> None:
    assert load_config(env={"GATE_API_URL": url}).api.url == url


@pytest.mark.parametrize(("url", "secret"), [
    ("https://user:hunter2-secret@vivenu.com", "hunter2-secret"),
    ("https://tok-abc123secret@vivenu.com", "tok-abc123secret"),
    ("https://vivenu.com/?token=abc123secret", "abc123secret"),
    ("https://vivenu.com/#abc123secret", "abc123secret"),
    ("abc123secret", "abc123secret"),            # the token pasted where the URL belongs
    ("https://vivenu.com:abc123secret", "abc123secret"),
    ("https://[abc123secret", "abc123secret"),   # an IPv6 bracket never closed
])
def test_bad_api_url_is_refused_without_echoing_the_secret_part(url: str, secret: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"GATE_API_URL": url})
    message = str(info.value)
    assert message.startswith("api.url: ")
    assert message.endswith("(set by GATE_API_URL)")
    assert secret not in message


def test_plain_http_to_a_remote_host_names_only_the_host(tmp_path: Path) -> None:
    path = write(tmp_path / "gate.toml", '[api]\nurl = "http://vivenu.example/x"\n')
    with pytest.raises(ConfigError, match=r"^api\.url: plain http:// is allowed only to "
                                          r"loopback, not to 'vivenu\.example'; use https://$"):
        load_config(path, env={})


def test_token_pasted_as_token_file_is_not_printed_back() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"GATE_API_TOKEN_FILE": "eyJhbGciOi.s3cr3t-value"})
    assert str(info.value) == ("GATE_API_TOKEN_FILE: no such file "
                               "(value not shown: it may be the secret itself)")


def test_token_pasted_as_token_file_in_the_file_is_not_printed_back(tmp_path: Path) -> None:
    path = write(tmp_path / "gate.toml", '[api]\ntoken_file = "s3cr3t-value"\n')
    with pytest.raises(ConfigError, match=r"^api\.token_file: no such file") as info:
        load_config(path, env={})
    assert "s3cr3t-value" not in str(info.value)


def test_overlong_token_as_token_file_is_not_printed_back() -> None:
    token = "x" * 5000  # stat() fails with ENAMETOOLONG, not ENOENT
    with pytest.raises(ConfigError, match="value not shown") as info:
        load_config(env={"GATE_API_TOKEN_FILE": token})
    assert token not in str(info.value)


def test_existing_token_file_problem_names_its_path(tmp_path: Path) -> None:
    token = write(tmp_path / "token", "")
    os.chmod(token, 0o600)
    with pytest.raises(ConfigError, match=f"api.token_file: {token} is empty"):
        load_config(write(tmp_path / "gate.toml", f'[api]\ntoken_file = "{token}"\n'), env={})


def test_env_override_that_is_wrong_names_its_variable() -> None:
    with pytest.raises(ConfigError, match=r"^gate_id: .* \(set by GATE_ID\)$"):
        load_config(env={"GATE_ID": "north\x1b[2J"})


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused(tmp_path: Path, value: str) -> None:
    path = write(tmp_path / "gate.toml", f"[sync]\ninterval = {value}\n")
    with pytest.raises(ConfigError, match=r"^sync\.interval: expected a number > 0"):
        load_config(path, env={})


def test_a_table_given_as_a_scalar_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "gate.toml", 'api = "token"\n')
    with pytest.raises(ConfigError, match=r"^api: expected a table$"):
        load_config(path, env={"GATE_API_URL": "https://vivenu.com"})


@pytest.mark.parametrize("value", ["1e300", "1" + "0" * 400])
def test_numbers_too_large_for_a_timer_are_refused(tmp_path: Path, value: str) -> None:
    """A huge interval used to pass and then crash the sync worker on every restart."""
    path = write(tmp_path / "gate.toml", f"[sync]\ninterval = {value}\n")
    with pytest.raises(ConfigError, match=r"^sync\.interval: expected a number > 0"):
        load_config(path, env={})


def test_more_retries_than_the_backoff_can_count_are_refused(tmp_path: Path) -> None:
    """retries = 5000 used to pass, then end the first failed request in an OverflowError
    (2.0 ** 1024) while telling how long the retries would take."""
    path = write(tmp_path / "gate.toml", "[api]\nretries = 5000\n")
    with pytest.raises(ConfigError, match=r"^api\.retries: expected an integer from 0 to 100, "
                                          r"got 5000$"):
        load_config(path, env={})


@pytest.mark.parametrize("token", ["s3cr3t\nxyz", "s3cr3t äxyz", "s3cr3t\x01xyz",
                                   "s3cr3t xyz"])
def test_a_token_that_cannot_be_a_header_is_refused_without_echo(tmp_path: Path,
                                                                  token: str) -> None:
    """A newline in it used to end as httpx's 'Illegal header value b...' line, token shown,
    after six attempts; a non-ASCII one was blamed on api.url."""
    path = write(tmp_path / "token", token + "\n")
    os.chmod(path, 0o600)
    for env, key in (({"GATE_API_TOKEN_FILE": str(path)}, "GATE_API_TOKEN_FILE"),
                     ({"GATE_API_TOKEN": token}, "GATE_API_TOKEN")):
        with pytest.raises(ConfigError, match=rf"^{key}: .*visible ASCII") as info:
            load_config(env=env)
        assert "s3cr3t" not in str(info.value) and "xyz" not in str(info.value)
