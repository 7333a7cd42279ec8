"""Hazard plug-ins: one small interface (:mod:`.base`) and a plain registry of the built-ins.

Each built-in hazard is one module here; :data:`PLUGINS` maps the names the catalog's
``plugin`` key uses to their classes, as ``rasterio.merge.MERGE_METHODS`` maps merge methods.
A user catalog may name a built-in or its own class as ``module:Class``; no module scanning.
"""

from __future__ import annotations

import importlib
import threading

from sitescreen.catalog import HazardSpec
from sitescreen.errors import CatalogError
from sitescreen.hazards.base import Hazard, HazardContext, HazardResult
from sitescreen.hazards.flood import CoastalFlood, RiverFlood
from sitescreen.hazards.heat import CckpIndicator
from sitescreen.hazards.typhoon import Typhoon
from sitescreen.hazards.water_stress import WaterStress

__all__ = ["Hazard", "HazardContext", "HazardResult", "PLUGINS", "load_hazard", "plugin_path",
           "register_hazard", "HAZARDS"]

#: The built-in hazard classes, by the name a catalog's ``plugin`` gives.
PLUGINS: dict[str, type] = {
    "water_stress": WaterStress,
    "river_flood": RiverFlood,
    "coastal_flood": CoastalFlood,
    "typhoon": Typhoon,
    "cckp_indicator": CckpIndicator,
}

#: Hazard instances registered by :func:`register_hazard`, by name; they take precedence
#: over the catalog's plugin for that name.
HAZARDS: dict[str, Hazard] = {}
# Plug-ins loaded from catalogs, by (name, plugin): a user catalog may point a packaged
# name at another class in the same process and must get that class.
_LOADED: dict[tuple[str, str], Hazard] = {}
# Mapped tasks load plug-ins from several threads at once.
_LOCK = threading.RLock()


def register_hazard(name: str, hazard: Hazard) -> None:
    """Register a hazard under ``name``; a second registration of a name is refused."""
    with _LOCK:
        _register(name, hazard)


def _register(name: str, hazard: Hazard) -> None:
    if name in HAZARDS:
        raise CatalogError(f"hazard {name!r} is already registered ({type(HAZARDS[name]).__name__})")
    if not isinstance(hazard, Hazard):
        raise CatalogError(f"{type(hazard).__name__} does not implement the Hazard interface")
    HAZARDS[name] = hazard


def load_hazard(spec: HazardSpec) -> Hazard:
    """The hazard plug-in for a catalog entry, imported from its ``module:Class``."""
    with _LOCK:
        if spec.name in HAZARDS:
            return HAZARDS[spec.name]
        key = (spec.name, spec.plugin)
        if key not in _LOADED:
            _LOADED[key] = _load(spec)
        return _LOADED[key]


def _plugin_class(spec: HazardSpec) -> type:
    """The class a catalog's ``plugin`` names: a key of :data:`PLUGINS`, or ``module:Class``."""
    if spec.plugin in PLUGINS:
        return PLUGINS[spec.plugin]
    module_name, _, class_name = spec.plugin.partition(":")
    if not module_name or not class_name:
        raise CatalogError(
            f"hazard {spec.name!r}: plugin {spec.plugin!r} is neither a built-in "
            f"({', '.join(PLUGINS)}) nor 'module:Class'")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise CatalogError(f"hazard {spec.name!r}: cannot load plugin {spec.plugin!r}: {exc}") from exc


def plugin_path(spec: HazardSpec) -> str:
    """The ``module:Class`` of the plug-in a catalog entry names (built-in names resolved),
    so a result fingerprint does not change with the way the catalog spells the plug-in."""
    cls = _plugin_class(spec)
    return f"{cls.__module__}:{cls.__qualname__}"


def _load(spec: HazardSpec) -> Hazard:
    hazard = _plugin_class(spec)()
    if getattr(hazard, "name", None) != spec.name:
        # One class may serve several catalog entries (river and coastal flood); the catalog name wins.
        try:
            hazard.name = spec.name
        except AttributeError as exc:
            raise CatalogError(f"hazard {spec.name!r}: plugin {spec.plugin!r} has name "
                               f"{getattr(hazard, 'name', None)!r}") from exc
    if not isinstance(hazard, Hazard):
        raise CatalogError(f"hazard {spec.name!r}: plugin {spec.plugin!r} does not implement "
                           "the Hazard interface (name, assess)")
    return hazard
