"""Colours, level styling and chart names shared by the charts, the report and the GIS files.

Plain data and pandas only: the GeoPackage style and the report's tables use these without
importing matplotlib, so a ``--no-report`` run never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from sitescreen.scenarios import scenario_rank

__all__ = ["LEVEL_COLOURS", "NO_DATA_COLOUR", "UNRESOLVED_COLOUR", "TEXT_ON", "SYNTHETIC_RED",
           "SYNTHETIC_TITLE", "BOUNDARY_CREDIT", "shares_chart_name", "map_chart_name",
           "hazard_order", "map_layers"]

#: Level colours, green (1, very low) to red (5, very high): ColorBrewer RdYlGn, 6 classes,
#: without the palest yellow so level 3 stays visible on white.
LEVEL_COLOURS: dict[int, str] = {1: "#1a9850", 2: "#91cf60", 3: "#fee08b", 4: "#fc8d59",
                                 5: "#d73027"}
#: No data (level 0) is grey, never a level colour: missing is not low.
NO_DATA_COLOUR = "#bdbdbd"
UNRESOLVED_COLOUR = "#ffffff"
TEXT_ON = {1: "white", 2: "black", 3: "black", 4: "black", 5: "white"}
SYNTHETIC_RED = "#b2182b"
SYNTHETIC_TITLE = "SYNTHETIC DEMO DATA"

#: Credit line for the country outlines drawn under the maps.
BOUNDARY_CREDIT = ("Country outlines: Natural Earth 1:110m (public domain), for orientation "
                   "only; not an official map.")


def shares_chart_name(hazard: str, fmt: str) -> str:
    """File name of a hazard's shares chart inside the run folder, e.g. ``charts/x_shares.png``."""
    return f"charts/{hazard}_shares.{fmt}"


def map_chart_name(hazard: str, scenario: str, year: int) -> str:
    """File name of a site map inside the run folder, e.g. ``charts/map_x_pessimistic_2050.png``."""
    return f"charts/map_{hazard}_{scenario}_{int(year)}.png"


def hazard_order(frame: pd.DataFrame) -> list[str]:
    """Composites first (what disclosures report), then single hazards, each in input order."""
    first = frame.drop_duplicates("hazard")
    comp = first["is_composite"].astype(bool) if "is_composite" in first else False
    return list(first.loc[comp, "hazard"]) + list(first.loc[~comp, "hazard"]) \
        if isinstance(comp, pd.Series) else list(first["hazard"])


def map_layers(table: pd.DataFrame, *, hazards: Sequence[str] | None = None,
               scenarios: Sequence[str] | None = None) -> list[tuple[str, str, int]]:
    """The (hazard, scenario, year) maps worth drawing by default.

    The headline composites (falling back to every hazard when the run has none), in the
    worst scenario of the run (the last in optimistic, current trend, pessimistic order),
    for every year of the run. Pass ``hazards``/``scenarios`` to choose others.
    """
    from sitescreen.outputs.summary import HEADLINE_HAZARDS  # report imports nothing from here

    # Distinct combinations first: the long table has millions of rows.
    combos = table[["hazard", "scenario", "year"]].drop_duplicates()
    present = list(combos["hazard"].unique())
    if hazards is None:
        hazards = [h for h in HEADLINE_HAZARDS if h in present] or present
    if scenarios is None:
        run_scen = sorted(set(combos["scenario"]), key=scenario_rank)
        scenarios = run_scen[-1:]
    years = sorted({int(y) for y in combos["year"]})
    have = {(h, s, int(y)) for h, s, y in combos.itertuples(index=False)}
    return [(h, s, y) for h in hazards for s in scenarios for y in years if (h, s, y) in have]
