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


def test_a_pathway_marked_exact_is_centred_on_its_target_year():
    """A period standing in for a year it is not centred on (the typhoon warming of
    2081-2100 for 2080, CCKP's 2060-2079 for 2080) is an approximation: marked inexact and
    explained, as a substituted pathway is."""
    from sitescreen.scenarios import CROSSWALK

    for (family, narrative, year), p in CROSSWALK.items():
        first, last = (int(v) for v in p.period.split("-"))
        centred = abs((first + last + 1) / 2 - year) <= 1
        if not centred:
            assert not p.exact and str(year) in p.note, (family, narrative, year, p)
        if p.exact:
            assert centred, (family, narrative, year, p)
    assert not pathway_for("tc_change", "optimistic", 2080).exact
    assert pathway_for("tc_change", "optimistic", 2050).exact
