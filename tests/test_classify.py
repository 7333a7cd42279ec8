import numpy as np
import pytest

from sitescreen.catalog import load_catalog
from sitescreen.classify import ThresholdSet, classify, load_threshold_sets, near_threshold
from sitescreen.errors import CatalogError


@pytest.fixture(scope="module")
def sets():
    return load_threshold_sets()


def test_water_stress_categories_map_as_reference(sets):
    ts = sets["water-stress-aqueduct-category-v1"]
    cats = np.array([0, 1, 2, 3, 4, -1, -9999, np.nan])
    assert classify(cats, ts).tolist() == [1, 2, 3, 4, 5, 4, 0, 0]


def test_flood_return_period_edges_are_inclusive(sets):
    ts = sets["flood-return-period-50cm-v1"]
    rp = np.array([2, 10, 10.5, 25, 50, 100, 250, 1000, 1001, np.inf, np.nan])
    assert classify(rp, ts).tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0]


def test_typhoon_grades_follow_gb_t_19201(sets):
    ts = sets["typhoon-china-grade-rp50-v1"]
    wind = np.array([10.0, 17.1, 17.2, 24.4, 24.5, 32.6, 32.7, 41.4, 41.5, 60.0])
    assert classify(wind, ts).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_level_never_decreases_as_hazard_worsens(sets):
    rng = np.random.default_rng(1)
    wind = np.sort(rng.uniform(0, 70, 500))
    assert np.all(np.diff(classify(wind, sets["typhoon-china-grade-rp50-v1"])) >= 0)
    rp = np.sort(rng.uniform(1, 2000, 500))
    assert np.all(np.diff(classify(rp, sets["flood-return-period-50cm-v1"])) <= 0)


def test_near_threshold_uses_margin(sets):
    ts = sets["typhoon-china-grade-rp50-v1"]
    flags = near_threshold(np.array([16.0, 20.0, 33.5, np.nan]), ts)
    assert flags.tolist() == [True, False, True, False]


def test_bad_threshold_sets_are_refused():
    with pytest.raises(CatalogError, match="increase strictly"):
        ThresholdSet("x", "h", "1", "ascending", "m/s", (1, 3, 2, 4))
    with pytest.raises(CatalogError, match="unknown kind"):
        ThresholdSet("x", "h", "1", "sideways", "m/s", (1, 2, 3, 4))
    with pytest.raises(CatalogError, match="unknown keys"):
        ThresholdSet.from_dict("x", {"hazard": "h", "version": "1", "kind": "ascending",
                                     "edges": [1, 2, 3, 4], "edgse": []})


def test_user_threshold_file_cannot_redefine_packaged_set(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text('[sets.typhoon-china-grade-rp50-v1]\nhazard="typhoon"\nversion="2"\n'
                 'kind="ascending"\nedges=[1,2,3,4]\n')
    with pytest.raises(CatalogError, match="already exist"):
        load_threshold_sets(f)
    f.write_text('[sets.typhoon-strict-v2]\nhazard="typhoon"\nversion="2"\n'
                 'kind="ascending"\nedges=[15,20,30,40]\n')
    assert load_threshold_sets(f)["typhoon-strict-v2"].edges == (15, 20, 30, 40)


def test_catalog_references_resolve_and_round_trip():
    cat = load_catalog()
    for spec in cat.hazards.values():
        assert spec.threshold_set in cat.thresholds
    entry = cat.dataset("aqueduct40")
    assert type(entry).from_dict(entry.id, {k: v for k, v in entry.to_dict().items()
                                            if k != "id"}) == entry


def test_catalog_rejects_unknown_keys_and_names(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[hazards.typhoon]\nlabel="T"\nplugin="a:b"\ndatasets=["ibtracs_wp"]\n'
                 'threshold_set="typhoon-china-grade-rp50-v1"\nscenarios=["optimistic"]\n'
                 'years=[2030]\nlicence="typo"\n')
    with pytest.raises(CatalogError, match="unknown keys"):
        load_catalog(f)
    with pytest.raises(CatalogError, match="the catalog has"):
        load_catalog().hazard("heat")
