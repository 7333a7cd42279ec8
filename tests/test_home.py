"""SITESCREEN_HOME: one place for the working folders (sitescreen.home)."""

from __future__ import annotations

from pathlib import Path

from sitescreen import home


def test_env_wins_and_data_override(monkeypatch, tmp_path):
    monkeypatch.setenv("SITESCREEN_HOME", str(tmp_path))
    monkeypatch.delenv("SITESCREEN_DATA", raising=False)
    assert home.home() == tmp_path
    assert home.data_dir() == tmp_path / "cache" / "data"
    assert home.demo_pack_dir() == tmp_path / "cache" / "demo-pack"
    monkeypatch.setenv("SITESCREEN_DATA", str(tmp_path / "elsewhere"))
    assert home.data_dir() == tmp_path / "elsewhere"


def test_checkout_when_run_from_it_else_per_user(monkeypatch, tmp_path):
    monkeypatch.delenv("SITESCREEN_HOME", raising=False)
    repo = Path(home.__file__).resolve().parents[1]
    monkeypatch.chdir(repo / "tests")
    assert home.home() == repo
    monkeypatch.chdir(tmp_path)
    from platformdirs import user_data_dir

    assert home.home() == Path(user_data_dir("sitescreen", appauthor=False))


def test_request_and_cli_share_the_setting(monkeypatch, tmp_path):
    from sitescreen.pipeline import make_request

    monkeypatch.setenv("SITESCREEN_HOME", str(tmp_path))
    request = make_request(sites="s.csv", data=str(home.data_dir()))
    assert request.cache_dir == str(tmp_path / "cache")
