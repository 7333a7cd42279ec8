"""Typhoon wind hazard: the 1-in-50-year wind at each site from IBTrACS best tracks,
scaled to a scenario and period with the Knutson et al. (2020) projections.

Method, in order (details and references in the private modules named):

1. Tracks (``_ibtracs``): IBTrACS v04r01 main tracks; wind = ``USA_WIND`` (JTWC, 1-minute,
   knots), or ``WMO_WIND`` converted to 1-minute (10-minute x 1.14) where JTWC has none.
2. Wind at sites (``_windfield``): Holland (1980) profile with Willoughby et al. (2006)
   Rmax, Willoughby & Rahn (2004) B and the Jelesnianski (1966) forward-motion term,
   along tracks interpolated to 1-hourly points within 500 km of each site; per site and
   storm, the highest wind.
3. Conversion to China's grades (GB/T 19201-2006: 2-minute mean wind at 10 m): 1-minute x
   0.96. The factor 1.04 between 1- and 2-minute winds is NOAA's (Hurricane Research
   Division, TC FAQ D4); WMO TD-1555 (Harper, Kepert & Ginger 2010) gust factors give
   0.96-0.98 depending on exposure. No over-land roughness reduction by default
   (``land_exposure_factor = 1``): the best-track winds of storms over land already carry
   their decay after landfall, the grades classify the strongest wind near a storm's
   centre (an open-exposure wind), and the parametric profile with climatological size
   already errs low for large storms (Mangkhut 2018 gives Hong Kong about 25 m/s, against
   45 m/s 10-minute means measured at Waglan Island).
   Set ``land_exposure_factor`` to about 0.9 (the sea-to-land wind reduction at landfall of
   Kaplan & DeMaria 1995, J. Appl. Meteor. 34, 2499-2512) to model sheltered inland sites.
4. Hazard metric (``_extremes``): over the base period (default 1980-2021: from about 1980
   every western Pacific storm is seen and rated by geostationary satellite with Dvorak
   analysis, while earlier intensities rest on aircraft reconnaissance, ended in 1987, and
   sparse reports; homogeneous intensity records start in 1982, Kossin et al. 2013, J. Climate
   26, 9960-9976), storms bringing at least 15 m/s form a Poisson process with GPD excesses;
   the value is the wind exceeded with annual probability ``1/return_period_years``. Also
   reported: the annual rates of gale-force (>= 17.2 m/s) and typhoon-force (>= 32.7 m/s)
   winds, counted from the record. Check against observations: on the JTWC tracks of
   1980-2021 Hong Kong gets about 1.1 gales a year, against 1.48 a year for the No. 8
   signal (gale expected or blowing, Hong Kong Observatory, 90 occasions 1956-2016).
5. Climate change (:func:`change_factors`): Knutson et al. (2020) western North Pacific
   changes at 2 degC, scaled to the warming between the base period and the target period
   with Jewson (2021): ``factor = (1 + k/100) ** (dT/2)``. Intensity (lifetime-maximum
   intensity) multiplies every wind; frequency (all TCs) multiplies the storm rate. The
   5th / 50th / 95th percentiles give ``level_low`` / ``levels`` / ``level_high``
   (both factors at the same percentile: a wide, conservative envelope). Changes in
   category 4-5 frequency and in rain rate are reported but not applied (the first
   largely restates the intensity shift, the second is not a wind). For 2081-2100 under
   SSP5-8.5 (dT about 3.7 degC) the scaling extrapolates Knutson's 2 degC assessment.

Coverage: a basin file speaks only for its basin. Sites outside ``coverage_bbox`` (default
0-60N, 100-180E, where western North Pacific storms are the only tropical cyclones) get no
data (level 0, flag ``outside-basin-coverage``); use the ALL-basin file with a wider box
elsewhere. Inside the box, a site where no storm brought 12 m/s gets 0 m/s, level 1.

The base-climate computation for a set of coordinates is done once per process and reused
by the 3 x 3 scenario-year calls.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sitescreen.classify import classify, near_threshold
from sitescreen.data.sources import file_says_synthetic, origin_details
from sitescreen.errors import CatalogError, HazardDataError
from sitescreen.hazards._extremes import PotFit, fit_pot, return_level
from sitescreen.hazards._ibtracs import TEN_TO_ONE_MINUTE, Tracks, file_key, read_ibtracs
from sitescreen.hazards._windfield import interpolate_tracks, storm_max_winds
from sitescreen.hazards.base import HazardContext, HazardResult
from sitescreen.scenarios import GLOBAL_WARMING_C, Narrative, parse_narrative, pathway_for

__all__ = [
    "Typhoon",
    "change_factors",
    "KNUTSON_2020_WNP",
    "BASE_WARMING_C",
    "DEFAULT_PARAMS",
    "GALE_MS",
    "TYPHOON_FORCE_MS",
    "clear_cache",
]

log = logging.getLogger(__name__)

#: GB/T 19201-2006 lower bounds (2-minute mean at 10 m): tropical storm (gale) and typhoon.
GALE_MS = 17.2
TYPHOON_FORCE_MS = 32.7

#: Knutson et al. (2020), BAMS 101(3), E303-E322, western North Pacific, projected change (%)
#: for 2 degC of global warming; percentiles 5, 25, 50, 75, 95 (Zenodo 10.5281/zenodo.4757343).
KNUTSON_2020_WNP: dict[str, tuple[float, float, float, float, float]] = {
    "frequency": (-30.4, -20.0, -10.3, 0.4, 17.3),
    "frequency_cat45": (-25.8, -14.3, -4.8, 16.1, 42.0),
    "intensity": (1.9, 3.2, 5.3, 6.5, 9.3),
    "precipitation": (6.3, 12.1, 16.5, 18.3, 23.8),
}
_PERCENTILES = (5, 25, 50, 75, 95)

#: Global warming of the default base period 1980-2021 above 1850-1900, degC: the mean of the
#: observed decadal anomalies, rounded, of about 0.45 (1980s), 0.6 (1990s), 0.8 (2000s) and
#: 1.09 (2011-2020, IPCC AR6 WG1 SPM A.1.2); consistent with AR6's 0.85 for 1995-2014, a
#: period centred about six years later. Change it with the base period.
BASE_WARMING_C = 0.75

DEFAULT_PARAMS: dict[str, Any] = {
    "return_period_years": 50,
    "base_period": [1980, 2021],
    "base_warming_c": BASE_WARMING_C,
    "wind_source": "usa_then_wmo",
    "wmo_to_one_minute": TEN_TO_ONE_MINUTE,
    "one_to_two_minute": 0.96,
    "land_exposure_factor": 1.0,
    "time_step_hours": 1.0,
    "search_radius_km": 500.0,
    "near_radius_km": 200.0,
    "pot_threshold_ms": 15.0,
    "min_gpd_events": 15,
    "gpd_shape_bounds": [-0.5, 0.0],
    "coverage_bbox": [100.0, 0.0, 180.0, 60.0],
    "with_coriolis": False,
}

_SOURCE = ("Knutson, T. et al. (2020) Tropical cyclones and climate change assessment: Part II, "
           "BAMS 101, E303-E322 (western North Pacific, 2 degC); scaled to other warming with "
           "Jewson, S. (2021) factor = (1 + k/100) ** (dT/2); warming levels IPCC AR6 WG1 "
           "Table SPM.1")


def change_factors(scenario: Narrative | str, year: int, *,
                   base_warming_c: float = BASE_WARMING_C) -> dict:
    """Multiplicative typhoon change factors for a narrative and target year.

    ``dT`` is the AR6 best-estimate warming of the scenario's period (SSP1-2.6, SSP2-4.5 or
    SSP5-8.5 via ``pathway_for("tc_change", ...)``) minus the warming of the track record's
    base period, and each Knutson et al. (2020) percentile change ``k`` (% at 2 degC) becomes
    ``(1 + k/100) ** (dT / 2)`` (Jewson 2021).

    Parameters
    ----------
    scenario : Narrative or str
    year : int
        2030, 2050 or 2080 (periods 2021-2040, 2041-2060, 2081-2100).
    base_warming_c : float, keyword-only
        Warming of the base period above 1850-1900, degC.

    Returns
    -------
    dict
        ``pathway``, ``period``, ``gwl``, ``base_warming``, ``dT``, ``exponent`` and, for
        ``intensity``, ``frequency``, ``frequency_cat45`` and ``precipitation``, the factors
        ``{"p5": ..., "p25": ..., "p50": ..., "p75": ..., "p95": ...}``.

    Examples
    --------
    >>> cf = change_factors("pessimistic", 2050, base_warming_c=0.4)  # dT = 2.0
    >>> round(cf["intensity"]["p50"], 3), round(cf["frequency"]["p5"], 3)
    (1.053, 0.696)
    """
    pathway = pathway_for("tc_change", parse_narrative(scenario), year)
    try:
        gwl = GLOBAL_WARMING_C[pathway.period][pathway.code]
    except KeyError as exc:
        raise CatalogError(
            f"no AR6 warming level for {pathway.code} in {pathway.period}; "
            f"known periods: {', '.join(GLOBAL_WARMING_C)}") from exc
    dt = gwl - float(base_warming_c)
    exponent = dt / 2.0
    out: dict[str, Any] = {
        "pathway": pathway.code,
        "period": pathway.period,
        "gwl": gwl,
        "base_warming": float(base_warming_c),
        "dT": dt,
        "exponent": exponent,
    }
    for metric, pcts in KNUTSON_2020_WNP.items():
        out[metric] = {f"p{p}": (1.0 + k / 100.0) ** exponent for p, k in zip(_PERCENTILES, pcts,
                                                                              strict=True)}
    out["knutson_2020_wnp_percent_at_2C"] = {m: list(v) for m, v in KNUTSON_2020_WNP.items()}
    out["applied"] = {"intensity": "multiplies every site wind",
                      "frequency": "multiplies the annual storm rate",
                      "frequency_cat45": "reported only", "precipitation": "reported only"}
    out["source"] = _SOURCE
    return out


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True, slots=True)
class _Params:
    return_period_years: float
    base_period: tuple[int, int]
    base_warming_c: float
    wind_source: str
    wmo_to_one_minute: float
    one_to_two_minute: float
    land_exposure_factor: float
    time_step_hours: float
    search_radius_km: float
    near_radius_km: float
    pot_threshold_ms: float
    min_gpd_events: int
    gpd_shape_bounds: tuple[float, float]
    coverage_bbox: tuple[float, float, float, float]
    with_coriolis: bool

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> _Params:
        unknown = set(params) - set(DEFAULT_PARAMS)
        if unknown:
            raise CatalogError(
                f"hazard 'typhoon': unknown params {sorted(unknown)}; allowed: {sorted(DEFAULT_PARAMS)}")
        p = {**DEFAULT_PARAMS, **params}
        try:
            out = cls(
                return_period_years=float(p["return_period_years"]),
                base_period=(int(p["base_period"][0]), int(p["base_period"][1])),
                base_warming_c=float(p["base_warming_c"]),
                wind_source=str(p["wind_source"]),
                wmo_to_one_minute=float(p["wmo_to_one_minute"]),
                one_to_two_minute=float(p["one_to_two_minute"]),
                land_exposure_factor=float(p["land_exposure_factor"]),
                time_step_hours=float(p["time_step_hours"]),
                search_radius_km=float(p["search_radius_km"]),
                near_radius_km=float(p["near_radius_km"]),
                pot_threshold_ms=float(p["pot_threshold_ms"]),
                min_gpd_events=int(p["min_gpd_events"]),
                gpd_shape_bounds=(float(p["gpd_shape_bounds"][0]), float(p["gpd_shape_bounds"][1])),
                coverage_bbox=tuple(float(v) for v in p["coverage_bbox"]),  # type: ignore[arg-type]
                with_coriolis=bool(p["with_coriolis"]),
            )
        except (TypeError, ValueError, IndexError) as exc:
            raise CatalogError(f"hazard 'typhoon': invalid params {params!r}: {exc}") from exc
        problems = []
        if not out.return_period_years > 1:
            problems.append(f"return_period_years must exceed 1, got {out.return_period_years}")
        if out.base_period[0] > out.base_period[1]:
            problems.append(f"base_period must be [first, last], got {list(out.base_period)}")
        for name in ("one_to_two_minute", "land_exposure_factor"):
            v = getattr(out, name)
            if not (0.5 <= v <= 1.2):
                problems.append(f"{name} must lie in 0.5-1.2, got {v}")
        if not 0 < out.time_step_hours <= 6:
            problems.append(f"time_step_hours must lie in (0, 6], got {out.time_step_hours}")
        if not 0 < out.pot_threshold_ms <= GALE_MS:
            problems.append(f"pot_threshold_ms must lie in (0, {GALE_MS}] so that every gale is "
                            f"an event, got {out.pot_threshold_ms}")
        if len(out.coverage_bbox) != 4:
            problems.append(f"coverage_bbox must be [lon_min, lat_min, lon_max, lat_max], got "
                            f"{list(out.coverage_bbox)}")
        if out.gpd_shape_bounds[0] > out.gpd_shape_bounds[1]:
            problems.append(f"gpd_shape_bounds must be [low, high], got {list(out.gpd_shape_bounds)}")
        if problems:
            raise CatalogError("hazard 'typhoon': " + "; ".join(problems))
        return out

    @property
    def scale(self) -> float:
        """1-minute marine wind -> reported wind (2-minute, exposure)."""
        return self.one_to_two_minute * self.land_exposure_factor

    @property
    def floor_ms(self) -> float:
        # Events are kept down to 12 m/s so the gale rate stays exact for intensity factors
        # up to 17.2 / 12 = 1.43 (the largest here is about 1.18).
        return min(self.pot_threshold_ms, 12.0)

    def climate_key(self) -> tuple:
        return (self.base_period, self.wind_source, self.wmo_to_one_minute, self.scale,
                self.time_step_hours, self.search_radius_km, self.near_radius_km,
                self.pot_threshold_ms, self.min_gpd_events, self.gpd_shape_bounds,
                self.coverage_bbox, self.with_coriolis)


def in_bbox(lon: np.ndarray, lat: np.ndarray, bbox: tuple[float, float, float, float]) -> np.ndarray:
    """True where (lon, lat) lies in ``[lon_min, lat_min, lon_max, lat_max]``; longitudes
    compare modulo 360, so a box may cross the date line (e.g. ``[100, 0, 200, 60]``)."""
    x0, y0, x1, y1 = bbox
    lon = np.asarray(lon, dtype="float64")
    lat = np.asarray(lat, dtype="float64")
    with np.errstate(invalid="ignore"):
        ok_lat = (lat >= y0) & (lat <= y1)
        if x1 - x0 >= 360:
            ok_lon = np.isfinite(lon)
        else:
            ok_lon = np.mod(lon - x0, 360.0) <= (x1 - x0)
    return ok_lat & ok_lon


# --------------------------------------------------------------------------- base climate


@dataclass(frozen=True, slots=True, eq=False)
class BaseClimate:
    """Per-site results for the base period, before any scenario scaling."""

    covered: np.ndarray  # finite coordinates inside the coverage box
    fit: PotFit
    event_site: np.ndarray
    event_wind: np.ndarray  # m/s, 2-minute, >= floor
    max_event: np.ndarray  # m/s, 0 where no event
    n_near: np.ndarray
    years: int
    seasons_used: tuple[int, int]
    tracks: dict


_CLIMATE: OrderedDict[tuple, BaseClimate] = OrderedDict()
_CLIMATE_MAX = 6
_CLIMATE_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget cached base climates (the parsed-track cache is ``_ibtracs.clear_track_cache``)."""
    with _CLIMATE_LOCK:
        _CLIMATE.clear()


def _coords_digest(lon: np.ndarray, lat: np.ndarray) -> str:
    h = hashlib.sha1(np.ascontiguousarray(lon, dtype="float64").tobytes())
    h.update(np.ascontiguousarray(lat, dtype="float64").tobytes())
    return h.hexdigest()


def base_climate(path: str, lon: np.ndarray, lat: np.ndarray, params: _Params) -> BaseClimate:
    """Base-period winds and fits per site, cached by (file version, coordinates, params)."""
    key = (file_key(path), _coords_digest(lon, lat), params.climate_key())
    with _CLIMATE_LOCK:
        if key in _CLIMATE:
            _CLIMATE.move_to_end(key)
            return _CLIMATE[key]
    result = _compute_base_climate(path, lon, lat, params)
    with _CLIMATE_LOCK:
        _CLIMATE[key] = result
        while len(_CLIMATE) > _CLIMATE_MAX:
            _CLIMATE.popitem(last=False)
    return result


def _compute_base_climate(path: str, lon: np.ndarray, lat: np.ndarray, p: _Params) -> BaseClimate:
    tracks: Tracks = read_ibtracs(path, wind_source=p.wind_source,  # type: ignore[arg-type]
                                  wmo_to_one_minute=p.wmo_to_one_minute)
    y0, y1 = p.base_period
    if tracks.n_storms == 0:
        raise HazardDataError(f"{path}: no main-track storms in the file")
    first, last = int(tracks.season.min()), int(tracks.season.max())
    used = (max(y0, first), min(y1, last))
    if used[0] > used[1]:
        raise HazardDataError(
            f"{path}: seasons {first}-{last} do not overlap the typhoon base period {y0}-{y1}; "
            "set [hazards.typhoon.params] base_period to years the file covers")
    if used != (y0, y1):
        log.warning("%s covers seasons %d-%d only; typhoon base period %d-%d shortened to %d-%d",
                    path, first, last, y0, y1, *used)
    years = used[1] - used[0] + 1
    n = len(lon)
    finite = np.isfinite(lon) & np.isfinite(lat)
    covered = finite & in_bbox(lon, lat, p.coverage_bbox)
    idx = np.flatnonzero(covered)
    points = interpolate_tracks(tracks, seasons=used, step_hours=p.time_step_hours)
    winds = storm_max_winds(points, lon[idx], lat[idx], scale=p.scale, floor_ms=p.floor_ms,
                            radius_km=p.search_radius_km, near_km=p.near_radius_km,
                            with_coriolis=p.with_coriolis)
    site = idx[winds.site]
    fit = fit_pot(site, winds.wind, n, years=years, u0=p.pot_threshold_ms,
                  min_gpd=p.min_gpd_events, xi_bounds=p.gpd_shape_bounds)
    max_event = np.zeros(n)
    np.maximum.at(max_event, site, winds.wind)
    n_near = np.zeros(n, dtype=np.int64)
    n_near[idx] = winds.n_storms_near
    summary = tracks.summary()
    summary.update({"storms_in_base_period": points.n_storms,
                    "interpolated_points": len(points)})
    log.info("typhoon base climate: %d sites (%d covered), %d storms %d-%d, %d events",
             n, len(idx), points.n_storms, used[0], used[1], len(site))
    return BaseClimate(covered=covered, fit=fit, event_site=site, event_wind=winds.wind,
                       max_event=max_event, n_near=n_near, years=years, seasons_used=used,
                       tracks=summary)


# --------------------------------------------------------------------------- the hazard


class Typhoon:
    """Typhoon wind: scaled 1-in-N-year 2-minute wind at 10 m (m/s), China's grades.

    Flags per site: ``no-coordinates``; ``outside-basin-coverage`` (level 0); ``near-threshold``
    (the median value within the threshold set's margin of a grade edge); ``few-storms``
    (fewer than ``min_gpd_events`` storms above the threshold: exponential tail).
    Extra columns: ``wind_rp_base_ms`` (base period, unscaled), ``wind_rp_low_ms`` /
    ``wind_rp_high_ms`` (5th / 95th percentile factors), ``rate_gale_per_yr`` and
    ``rate_typhoon_force_per_yr`` (scenario, median factors) and their ``_base`` values,
    ``n_storms_within_200km``, ``n_events_over_threshold`` and ``gpd_shape``; -1 / NaN where
    not covered.
    """

    name = "typhoon"

    def assess(self, lon: np.ndarray, lat: np.ndarray, *, scenario: Narrative, year: int,
               context: HazardContext) -> HazardResult:
        """Values, levels, range and flags per site for one narrative and year.

        Raises
        ------
        CatalogError
            Unknown or invalid ``[hazards.typhoon.params]``, or no pathway for the year.
        HazardDataError
            The track file is missing, remote or malformed.
        """
        params = _Params.from_params(context.params)
        scenario = parse_narrative(scenario)
        pathway = pathway_for("tc_change", scenario, year)
        lon = np.asarray(lon, dtype="float64").ravel()
        lat = np.asarray(lat, dtype="float64").ravel()
        if lon.shape != lat.shape:
            raise ValueError(f"typhoon: {len(lon)} longitudes for {len(lat)} latitudes")
        path = self._track_file(context)
        base = base_climate(path, lon, lat, params)
        cf = change_factors(scenario, year, base_warming_c=params.base_warming_c)
        T = params.return_period_years

        def wind(pct: str | None) -> np.ndarray:
            i = cf["intensity"][pct] if pct else 1.0
            f = cf["frequency"][pct] if pct else 1.0
            w = return_level(base.fit, T, frequency=f, intensity=i)
            # No storm above the threshold: report the strongest storm seen (0 if none).
            w = np.where(np.isnan(w), base.max_event * i, w)
            return np.where(base.covered, w, np.nan)

        values, low, high, base_w = wind("p50"), wind("p5"), wind("p95"), wind(None)
        ts = context.thresholds
        levels, level_low, level_high = classify(values, ts), classify(low, ts), classify(high, ts)

        def rate(threshold: float, pct: str | None) -> np.ndarray:
            i = cf["intensity"][pct] if pct else 1.0
            f = cf["frequency"][pct] if pct else 1.0
            hits = np.bincount(base.event_site, weights=(base.event_wind * i >= threshold),
                               minlength=len(lon))
            return np.where(base.covered, f * hits / base.years, np.nan)

        flags = self._flags(lon, lat, values, base, params, ts)
        near_key = f"n_storms_within_{params.near_radius_km:g}km"
        extra = {
            "wind_rp_base_ms": base_w,
            "wind_rp_low_ms": low,
            "wind_rp_high_ms": high,
            "rate_gale_per_yr": rate(GALE_MS, "p50"),
            "rate_typhoon_force_per_yr": rate(TYPHOON_FORCE_MS, "p50"),
            "rate_gale_base_per_yr": rate(GALE_MS, None),
            "rate_typhoon_force_base_per_yr": rate(TYPHOON_FORCE_MS, None),
            near_key: np.where(base.covered, base.n_near, -1).astype(np.int64),
            "n_events_over_threshold": np.where(base.covered, base.fit.n, -1).astype(np.int64),
            "gpd_shape": np.where(base.covered, base.fit.xi, np.nan),
        }
        details = {
            "change_factors": cf,
            "return_period_years": T,
            "base_period": list(params.base_period),
            "base_period_used": list(base.seasons_used),
            "record_years": base.years,
            "tracks": base.tracks,
            "wind": {
                "profile": "Holland (1980), Vmax form" + (" with Coriolis" if params.with_coriolis
                                                          else ", cyclostrophic"),
                "rmax": "USA_RMW, else Willoughby, Darling & Rahn (2006)",
                "holland_b": "Willoughby & Rahn (2004): 0.886 + 0.0177 Vmax - 0.0094 lat",
                "asymmetry": "Jelesnianski (1966) translation term",
                "time_step_hours": params.time_step_hours,
                "search_radius_km": params.search_radius_km,
                "averaging": "1-minute (JTWC) x one_to_two_minute -> 2-minute mean at 10 m",
                "one_to_two_minute": params.one_to_two_minute,
                "land_exposure_factor": params.land_exposure_factor,
                "wmo_to_one_minute": params.wmo_to_one_minute,
                "wind_source": params.wind_source,
            },
            "extremes": {
                "method": "Poisson rate of storms >= threshold, GPD excesses (PWM, Hosking & "
                          "Wallis 1987), exponential below min_gpd_events",
                "threshold_ms": params.pot_threshold_ms,
                "min_gpd_events": params.min_gpd_events,
                "gpd_shape_bounds": list(params.gpd_shape_bounds),
            },
            "coverage_bbox": list(params.coverage_bbox),
            **origin_details(context.data.origin,
                             [Path(path).name] if file_says_synthetic(path) else []),
        }
        return HazardResult(
            hazard=self.name,
            scenario=scenario,
            year=int(year),
            pathway=pathway,
            units=f"m/s, 1-in-{T:g}-year 2-minute mean wind at 10 m",
            threshold_set=ts.name,
            datasets=tuple(context.spec.datasets),
            method=(f"IBTrACS best tracks {base.seasons_used[0]}-{base.seasons_used[1]}, Holland "
                    f"(1980) wind profile at sites, Poisson-GPD {T:g}-year wind, scaled with "
                    "Knutson et al. (2020) / Jewson (2021)"),
            values=values,
            levels=levels,
            level_low=np.minimum(level_low, levels),
            level_high=np.maximum(level_high, levels),
            flags=flags,
            extra=extra,
            details=details,
        )

    @staticmethod
    def _track_file(context: HazardContext) -> str:
        if not context.spec.datasets:
            raise CatalogError("hazard 'typhoon' names no dataset; expected ibtracs_wp")
        dataset = context.spec.datasets[0]
        try:
            entry = context.datasets[dataset]
        except KeyError as exc:
            raise CatalogError(f"hazard 'typhoon': dataset {dataset!r} missing from the "
                               "context") from exc
        if not entry.files:
            raise CatalogError(f"dataset {dataset!r} lists no files")
        path = context.data.require(entry, entry.files[0])
        if path.startswith("/vsicurl/"):
            raise HazardDataError(
                f"dataset {dataset!r}: {entry.files[0]} is read from {path}, but IBTrACS CSV "
                "files are read whole; fetch it into the local cache first with "
                f"'sitescreen data fetch {dataset}'")
        return path

    @staticmethod
    def _flags(lon: np.ndarray, lat: np.ndarray, values: np.ndarray, base: BaseClimate,
               params: _Params, ts) -> np.ndarray:
        finite = np.isfinite(lon) & np.isfinite(lat)
        parts = {
            "no-coordinates": ~finite,
            "outside-basin-coverage": finite & ~base.covered,
            "near-threshold": base.covered & near_threshold(values, ts),
            # A tail fitted to a handful of storms; sites no storm reached are not flagged.
            "few-storms": base.covered & (base.fit.n > 0) & (base.fit.n < params.min_gpd_events),
        }
        out = np.full(len(lon), "", dtype=object)
        for name, mask in parts.items():
            hit = np.flatnonzero(mask)
            out[hit] = [f"{s};{name}" if s else name for s in out[hit]]
        return out

