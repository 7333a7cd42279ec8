"""Scenario narratives and the crosswalk to each dataset's own pathways.

Users speak of three narratives (as the WWF Water Risk Filter does); every dataset has its own
pathways and periods. This module is the one place that maps one to the other. A mapping that
has no exact counterpart is marked ``exact=False`` with a note, and that flag travels with
every value and share computed from it: nothing is substituted silently.

Sources: WRI Aqueduct 4.0 technical note (Kuzma et al. 2023) for ``opt``/``bau``/``pes`` and
its 30-year periods; Aqueduct Floods methodology (Ward et al. 2020) for RCP4.5/8.5 and its
periods; IPCC AR6 WG1 SPM Table SPM.1 for the SSP warming levels used to scale typhoons;
the World Bank Climate Change Knowledge Portal (CCKP) file structure for its CMIP6 scenarios
and 20-year climatology periods (its 1995-2014 reference is a catalog parameter, as the
flood baselines are).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

from sitescreen.errors import CatalogError

__all__ = [
    "Narrative",
    "Pathway",
    "CROSSWALK",
    "GLOBAL_WARMING_C",
    "parse_narrative",
    "scenario_rank",
    "scenario_title",
    "pathway_for",
    "crosswalk_table",
]


class Narrative(StrEnum):
    OPTIMISTIC = "optimistic"
    CURRENT_TREND = "current_trend"
    PESSIMISTIC = "pessimistic"

    @property
    def title(self) -> str:
        return {"optimistic": "Optimistic", "current_trend": "Current Trend",
                "pessimistic": "Pessimistic"}[self.value]


_ALIASES = {
    "optimistic": Narrative.OPTIMISTIC, "opt": Narrative.OPTIMISTIC,
    "current_trend": Narrative.CURRENT_TREND, "current-trend": Narrative.CURRENT_TREND,
    "current trend": Narrative.CURRENT_TREND, "currenttrend": Narrative.CURRENT_TREND,
    "bau": Narrative.CURRENT_TREND, "current": Narrative.CURRENT_TREND,
    "pessimistic": Narrative.PESSIMISTIC, "pes": Narrative.PESSIMISTIC,
}


def parse_narrative(name: str | Narrative) -> Narrative:
    """Return the narrative for a user-typed name (case-insensitive, aliases accepted).

    >>> parse_narrative("Current Trend")
    <Narrative.CURRENT_TREND: 'current_trend'>
    """
    if isinstance(name, Narrative):
        return name
    key = str(name).strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    valid = ", ".join(n.value for n in Narrative)
    raise CatalogError(f"unknown scenario {name!r}: expected one of {valid}")


def scenario_rank(name: str | Narrative) -> int:
    """Sort key of a scenario in tables, charts and reports: optimistic, current trend,
    pessimistic, then anything unknown (outputs of other versions are shown, not refused).

    >>> sorted(["pessimistic", "other", "Optimistic"], key=scenario_rank)
    ['Optimistic', 'pessimistic', 'other']
    """
    try:
        return list(Narrative).index(parse_narrative(name))
    except CatalogError:
        return len(Narrative)


def scenario_title(name: str | Narrative) -> str:
    """The display title of a scenario ("Current Trend"); an unknown name as given."""
    try:
        return parse_narrative(name).title
    except CatalogError:
        return str(name)


@dataclass(frozen=True, slots=True)
class Pathway:
    """A dataset's own pathway and period standing for a narrative and target year."""

    family: str
    narrative: Narrative
    year: int
    code: str
    label: str
    period: str
    exact: bool
    note: str = ""

    @classmethod
    def from_dict(cls, d: dict) -> Pathway:
        return cls(family=d["family"], narrative=Narrative(d["narrative"]), year=int(d["year"]),
                   code=d["code"], label=d["label"], period=d["period"],
                   exact=bool(d["exact"]), note=d.get("note", ""))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["narrative"] = self.narrative.value
        if not d["note"]:
            del d["note"]
        return d


# CMIP6 scenarios for the three narratives (typhoon change factors, CCKP heat).
_SSP_PATHWAYS = {
    Narrative.OPTIMISTIC: ("ssp126", "SSP1-2.6", True, ""),
    Narrative.CURRENT_TREND: ("ssp245", "SSP2-4.5", True, ""),
    Narrative.PESSIMISTIC: ("ssp585", "SSP5-8.5", True, ""),
}

# (code, label, exact, note) per narrative, and period per year, for each dataset family.
_FAMILIES: dict[str, dict] = {
    "aqueduct40": {
        "pathways": {
            Narrative.OPTIMISTIC: ("opt", "SSP1 RCP2.6", True, ""),
            Narrative.CURRENT_TREND: ("bau", "SSP3 RCP7.0", True, ""),
            Narrative.PESSIMISTIC: ("pes", "SSP5 RCP8.5", True, ""),
        },
        "periods": {2030: "2015-2045", 2050: "2035-2065", 2080: "2065-2095"},
    },
    "aqueduct_floods": {
        "pathways": {
            Narrative.OPTIMISTIC: ("rcp4p5", "RCP4.5", True, ""),
            Narrative.CURRENT_TREND: (
                "rcp4p5", "RCP4.5", False,
                "Aqueduct Floods has only RCP4.5 and RCP8.5; current trend uses RCP4.5, "
                "the nearer one (no RCP6.0/SSP3-7.0 layer exists)",
            ),
            Narrative.PESSIMISTIC: ("rcp8p5", "RCP8.5", True, ""),
        },
        "periods": {2030: "2010-2049", 2050: "2030-2069", 2080: "2060-2099"},
    },
    "tc_change": {
        "pathways": _SSP_PATHWAYS,
        "periods": {2030: "2021-2040", 2050: "2041-2060", 2080: "2081-2100"},
        # AR6's table of warming has no 2061-2080 row: 2080 takes the 2081-2100 warming,
        # centred on 2090, so it stands in for the target year rather than matching it.
        "inexact_periods": {
            2080: "IPCC AR6 gives warming for 2021-2040, 2041-2060 and 2081-2100 only; 2080 "
                  "uses the 2081-2100 warming, centred on 2090, a decade after the target year",
        },
    },
    # World Bank CCKP, CMIP6 0.25-degree (model-run ensemble-all-{code}); the periods are its
    # 20-year climatologies. 2080 takes 2060-2079, the climatology around the target year
    # (2080-2099 is the one centred on 2090).
    "cckp_cmip6": {
        "pathways": _SSP_PATHWAYS,
        "periods": {2030: "2020-2039", 2050: "2040-2059", 2080: "2060-2079"},
        "inexact_periods": {
            2080: "CCKP has no climatology centred on 2080; 2080 uses 2060-2079, centred on "
                  "2070, a decade before the target year (2080-2099 is centred on 2090)",
        },
    },
}

#: Global warming above 1850-1900 in degC, IPCC AR6 WG1 SPM Table SPM.1 best estimates.
GLOBAL_WARMING_C: dict[str, dict[str, float]] = {
    "2021-2040": {"ssp126": 1.5, "ssp245": 1.5, "ssp370": 1.5, "ssp585": 1.6},
    "2041-2060": {"ssp126": 1.7, "ssp245": 2.0, "ssp370": 2.1, "ssp585": 2.4},
    "2081-2100": {"ssp126": 1.8, "ssp245": 2.7, "ssp370": 3.6, "ssp585": 4.4},
}


def _build() -> dict[tuple[str, Narrative, int], Pathway]:
    table = {}
    for family, spec in _FAMILIES.items():
        inexact = spec.get("inexact_periods", {})
        for narrative, (code, label, exact, note) in spec["pathways"].items():
            for year, period in spec["periods"].items():
                why = "; ".join(n for n in (note, inexact.get(year, "")) if n)
                table[(family, narrative, year)] = Pathway(
                    family, narrative, year, code, label, period,
                    exact and year not in inexact, why)
    return table


#: (dataset family, narrative, year) -> Pathway
CROSSWALK: dict[tuple[str, Narrative, int], Pathway] = _build()


def pathway_for(family: str, narrative: Narrative | str, year: int) -> Pathway:
    """Look up the pathway a dataset family uses for a narrative and year.

    Raises :class:`CatalogError` naming the valid choices when there is none: a missing
    combination is an error, never a silent fallback.
    """
    narrative = parse_narrative(narrative)
    try:
        return CROSSWALK[(family, narrative, int(year))]
    except KeyError:
        if family not in _FAMILIES:
            raise CatalogError(
                f"no scenario crosswalk for dataset family {family!r}; "
                f"known: {', '.join(sorted(_FAMILIES))}") from None
        years = ", ".join(str(y) for y in sorted(_FAMILIES[family]["periods"]))
        raise CatalogError(
            f"{family} has no period for year {year}; available years: {years}") from None


def crosswalk_table() -> list[dict]:
    """The whole crosswalk as plain rows, for manifests and reports."""
    return [p.to_dict() for p in CROSSWALK.values()]
