"""The hazard plug-in registry: catalog plug-ins by (name, plugin), explicit registrations."""

from __future__ import annotations

import dataclasses
import sys
import types

import numpy as np
import pytest

from sitescreen.catalog import load_catalog
from sitescreen.errors import CatalogError
from sitescreen.hazards import HAZARDS, load_hazard, register_hazard
from sitescreen.hazards.flood import CoastalFlood, RiverFlood


class _Constant:
    """A user plug-in: a stand-in class that a user catalog names for a packaged hazard."""

    name = "constant"

    def assess(self, lon, lat, *, scenario, year, context):  # pragma: no cover - not called
        return np.ones(len(lon))


@pytest.fixture
def user_module(monkeypatch):
    module = types.ModuleType("user_hazards_for_test")
    module.Constant = _Constant
    module.NotAHazard = type("NotAHazard", (), {"name": "x"})
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module.__name__


def test_the_same_name_with_another_plugin_gets_that_plugin(user_module):
    spec = load_catalog().hazard("river_flood")
    packaged = load_hazard(spec)
    replaced = load_hazard(dataclasses.replace(spec, plugin=f"{user_module}:Constant"))

    assert isinstance(packaged, RiverFlood) and isinstance(replaced, _Constant)
    assert replaced.name == "river_flood"  # the catalog name wins over the class's own
    assert load_hazard(spec) is packaged  # each plug-in is loaded once


def test_one_class_serves_two_catalog_names():
    catalog = load_catalog()
    coastal = load_hazard(catalog.hazard("coastal_flood"))
    river = load_hazard(catalog.hazard("river_flood"))
    assert isinstance(coastal, CoastalFlood) and (coastal.name, river.name) == (
        "coastal_flood", "river_flood")


def test_a_class_without_the_interface_is_a_catalog_error(user_module):
    spec = dataclasses.replace(load_catalog().hazard("typhoon"), name="odd",
                               plugin=f"{user_module}:NotAHazard")
    with pytest.raises(CatalogError, match="does not implement the Hazard interface"):
        load_hazard(spec)


def test_an_explicit_registration_wins_and_is_not_replaced(monkeypatch):
    monkeypatch.setattr("sitescreen.hazards.HAZARDS", dict(HAZARDS))
    mine = _Constant()
    mine.name = "heat_test"
    register_hazard("heat_test", mine)
    spec = dataclasses.replace(load_catalog().hazard("typhoon"), name="heat_test")
    assert load_hazard(spec) is mine
    with pytest.raises(CatalogError, match="already registered"):
        register_hazard("heat_test", _Constant())


def test_built_in_plugins_by_name_and_by_path_are_the_same_plugin():
    import dataclasses

    from sitescreen.catalog import load_catalog
    from sitescreen.hazards import PLUGINS, plugin_path
    from sitescreen.hazards.flood import RiverFlood

    spec = load_catalog().hazard("river_flood")
    assert spec.plugin == "river_flood" and PLUGINS["river_flood"] is RiverFlood
    by_path = dataclasses.replace(spec, plugin="sitescreen.hazards.flood:RiverFlood")
    # Result fingerprints hold the resolved path, so either spelling reuses stored results.
    assert plugin_path(spec) == plugin_path(by_path) == "sitescreen.hazards.flood:RiverFlood"


def test_an_unknown_plugin_name_lists_the_built_ins():
    import dataclasses

    import pytest

    from sitescreen.catalog import load_catalog
    from sitescreen.errors import CatalogError

    spec = dataclasses.replace(load_catalog().hazard("typhoon"), name="x", plugin="cyclone")
    with pytest.raises(CatalogError, match="neither a built-in .*typhoon.* nor 'module:Class'"):
        load_hazard(spec)
