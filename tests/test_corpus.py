"""The bad-input corpus: every file in tests/corpus is refused or accepted as expected.toml says.

The big cases (a file over the size limit, 100,000 rows) are generated here in ``tmp_path``
rather than committed. End to end, every rejected file stops ``pipeline.screen`` before
anything is written; ``sitescreen screen`` on each (exit 2, a message, no traceback) is in the
reliability table (tests/reliability_cases.py).
"""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest

from sitescreen.errors import SitescreenError, SiteValidationError
from sitescreen.sites import DEFAULT_MAX_BYTES, SiteWarning, read_sites, validate_sites

CORPUS = Path(__file__).parent / "corpus"
EXPECTED = tomllib.loads((CORPUS / "expected.toml").read_text(encoding="utf-8"))
TRACEBACK_MARKERS = ("Traceback", 'File "', "Error:", "raise ")


def test_every_corpus_file_has_an_expectation():
    files = {p.name for p in CORPUS.iterdir() if p.name not in ("expected.toml", "README.md")}
    assert files == set(EXPECTED)
    assert len(files) >= 30


def _assert_clean(text: str) -> None:
    for marker in TRACEBACK_MARKERS:
        assert marker not in text, f"traceback-like text {marker!r} in:\n{text}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name: str):
    case = EXPECTED[name]
    path = CORPUS / name
    report = validate_sites(path)
    text = report.format(max_problems=None)
    _assert_clean(text)
    for needle in case.get("contains", []):
        assert needle in text, f"{needle!r} not in:\n{text}"

    if case["outcome"] == "reject":
        assert not report.ok
        assert report.sites is None
        with pytest.raises(SiteValidationError) as info:
            read_sites(path)
        message = str(info.value)
        _assert_clean(message)
        assert message.startswith(f"{path}: ")
        for needle in case.get("contains", []):
            assert needle in message, f"{needle!r} not in:\n{message}"
        assert all(p.severity == "error" for p in info.value.problems)
        kept = case.get("kept_with_warn")
        if kept is None:  # the file as a whole is refused, whatever the policy
            with pytest.raises(SiteValidationError):
                read_sites(path, on_invalid="warn")
        else:
            with pytest.warns(SiteWarning):
                gdf = read_sites(path, on_invalid="warn")
            assert len(gdf) == kept
    else:
        assert report.ok
        assert bool(report.warnings) == (case["outcome"] == "warn")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # on_invalid="raise" never warns, it logs
            gdf = read_sites(path)
        assert len(gdf) == case["sites"]
        assert gdf["site_id"].is_unique


def test_file_over_default_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.geojson"
    with open(path, "wb") as f:  # sparse: nothing, never read
        f.truncate(DEFAULT_MAX_BYTES + 1)
    report = validate_sites(path)
    assert report.sites is None
    text = report.format()
    assert f"{DEFAULT_MAX_BYTES + 1:,} bytes" in text
    assert f"{DEFAULT_MAX_BYTES:,} bytes" in text
    assert "max_bytes" in text  # says how to raise the limit
    with pytest.raises(SitescreenError):
        read_sites(path, on_invalid="ignore")


def test_small_max_bytes_refuses_a_good_file():
    path = CORPUS / "bom.csv"
    size = path.stat().st_size
    with pytest.raises(SiteValidationError, match=f"more than the limit of {size - 1:,} bytes"):
        read_sites(path, max_bytes=size - 1)
    assert len(read_sites(path, max_bytes=size)) == 2


def test_hundred_thousand_rows(tmp_path):
    n = 100_000
    rng = np.random.default_rng(7)
    lon = rng.uniform(73.0, 135.0, n).round(5)
    lat = rng.uniform(18.0, 53.0, n).round(5)
    rows = [f"s{i},site {i},Example Co,office,,Shanghai,CN,{lon[i]},{lat[i]}" for i in range(n)]
    rows[41_999] = "s41999,bad site,Example Co,office,,Shanghai,CN,31.2,121.4"  # swapped
    rows[77_776] = "S7,dup of s7,Example Co,office,,Shanghai,CN,121.4,31.2"
    path = tmp_path / "big.csv"
    path.write_text("site_id,name,company,kind,address,city,country,lon,lat\n"
                    + "\n".join(rows) + "\n", encoding="utf-8")

    with pytest.warns(SiteWarning) as rec:
        gdf = read_sites(path, on_invalid="warn")
    summary = str(rec[0].message)
    assert summary.startswith(f"{path}: 100000 sites read, 2 errors, 0 warnings")
    assert "row 42001 (site_id 's41999'), field 'lat': latitude 121.4" in summary
    assert "row 77778 (site_id 'S7'), field 'site_id': duplicate site_id 'S7': row 9 " in summary
    assert len(gdf) == n - 2
    assert gdf["lon"].iloc[0] == lon[0]
    assert gdf["input_ref"].iloc[-1] == f"row {n + 1}"


# ------------------------------------------------------------------- end to end: nothing written

REJECTED = sorted(name for name, case in EXPECTED.items() if case["outcome"] == "reject")


@pytest.fixture(scope="module")
def empty_data(tmp_path_factory) -> Path:
    """A data folder with nothing in it: a rejected sites file must fail before any data."""
    return tmp_path_factory.mktemp("empty-data")


@pytest.mark.parametrize("name", REJECTED)
def test_pipeline_refuses_a_rejected_file_before_writing_anything(tmp_path, empty_data, name):
    from sitescreen import pipeline

    out, cache = tmp_path / "results", tmp_path / "cache"
    request = pipeline.make_request(sites=str(CORPUS / name), data=str(empty_data),
                                    out=str(out), cache_dir=str(cache))
    with pytest.raises(SiteValidationError) as info:
        pipeline.screen(request)
    assert str(info.value).startswith(f"{CORPUS / name}: ")
    # No run folder, no .tmp-* folder, no result store or geocode cache: nothing at all.
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# The command line on every rejected file (exit 2, the message, nothing written) is a row of
# the reliability table: tests/reliability_cases.py, run by tests/test_reliability.py.
