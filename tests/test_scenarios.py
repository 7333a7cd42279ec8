import pytest

from sitescreen.errors import CatalogError
from sitescreen.scenarios import Narrative, parse_narrative, pathway_for


@pytest.mark.parametrize("text,expected", [
    ("Optimistic", Narrative.OPTIMISTIC), ("current trend", Narrative.CURRENT_TREND),
    ("PES", Narrative.PESSIMISTIC)])
def test_parse_narrative_accepts_user_spellings(text, expected):
    assert parse_narrative(text) is expected


def test_unknown_scenario_lists_valid_ones():
    with pytest.raises(CatalogError, match="optimistic, current_trend, pessimistic"):
        parse_narrative("ssp370")


def test_aqueduct_water_pathways_and_periods():
    p = pathway_for("aqueduct40", "current_trend", 2050)
    assert (p.code, p.label, p.period, p.exact) == ("bau", "SSP3 RCP7.0", "2035-2065", True)


def test_flood_current_trend_is_flagged_inexact():
    p = pathway_for("aqueduct_floods", Narrative.CURRENT_TREND, 2030)
    assert p.code == "rcp4p5" and not p.exact and "RCP4.5" in p.note
    assert pathway_for("aqueduct_floods", "pessimistic", 2030).exact


def test_missing_year_is_an_error_not_a_fallback():
    with pytest.raises(CatalogError, match="available years: 2030, 2050, 2080"):
        pathway_for("aqueduct40", "optimistic", 2040)
