"""Configuration precedence and validation; state store migrations."""

from __future__ import annotations

import sqlite3

import pytest

from appliance.config import ConfigError, load_config
from appliance.state import StateStore, StoreError
from appliance.state.migrations import MIGRATIONS


def test_precedence_file_env_flags(tmp_path, monkeypatch):
    config_file = tmp_path / "config.toml"
    config_file.write_text('port = 9000\nhost = "127.0.0.2"\nprofile = "cpu"\n')
    assert load_config(config_file).port == 9000
    monkeypatch.setenv("SLM_PORT", "9100")
    config = load_config(config_file)
    assert (config.port, config.host, config.profile) == (9100, "127.0.0.2", "cpu")
    assert load_config(config_file, port=9200).port == 9200


def test_defaults_are_loopback(monkeypatch):
    monkeypatch.delenv("SLM_HOST", raising=False)
    assert load_config(None).host == "127.0.0.1"


@pytest.mark.parametrize(("text", "message"), [
    ("colour = 'red'\n", "colour: Extra inputs are not permitted"),
    ("port = 'eighty'\n", "port: Input should be a valid integer"),
    ("port = [\n", "invalid TOML"),
])
def test_bad_config_names_file_and_field(tmp_path, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_state_dir_from_systemd(monkeypatch, tmp_path):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "svc"))
    assert load_config(None).resolved_state_dir() == tmp_path / "svc"


def test_migrations_apply_once_and_refuse_newer_schema(tmp_path):
    store = StateStore(tmp_path / "state.db").open()
    assert store.schema_version() == MIGRATIONS[-1][0]
    store.set_setting("k", "v")
    store.close()
    again = StateStore(tmp_path / "state.db").open()  # re-open: no migration re-runs, data kept
    assert again.get_setting("k") == "v"
    again.close()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(StoreError, match="newer than this slm-appliance"):
        StateStore(tmp_path / "state.db").open()


def test_failed_transaction_leaves_nothing(tmp_path):
    store = StateStore(tmp_path / "state.db").open()
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute("INSERT INTO settings(key, value) VALUES('half', 'done')")
        raise RuntimeError("crash mid-change")
    assert store.get_setting("half") is None
