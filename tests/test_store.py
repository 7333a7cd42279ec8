"""sitescreen.store: a failed write to the result store is an error saying what to free."""

from __future__ import annotations

import numpy as np
import pytest

from sitescreen.errors import OutputError
from sitescreen.hazards import HazardResult
from sitescreen.scenarios import Narrative, pathway_for
from sitescreen.store import ResultStore


def _result(n: int) -> HazardResult:
    levels = np.full(n, 3, dtype="int8")
    s, y = Narrative.PESSIMISTIC, 2030
    return HazardResult(hazard="river_flood", scenario=s, year=y,
                        pathway=pathway_for("aqueduct_floods", s, y), units="u",
                        threshold_set="ts", datasets=("d",), method="m",
                        values=levels.astype(float), levels=levels, level_low=levels,
                        level_high=levels, flags=np.array([""] * n, dtype=object))


def test_a_store_that_cannot_be_written_is_an_output_error_saying_what_to_free(tmp_path):
    root = tmp_path / "results"
    root.mkdir()
    (root / "abc").write_text("in the way")  # the layer's folder cannot be created
    store = ResultStore(root)
    lon, lat = np.array([121.4, 121.5]), np.array([31.2, 31.3])

    with pytest.raises(OutputError) as err:
        store.save("abc", lon, lat, _result(2))

    msg = str(err.value)
    assert str(root) in msg and "river_flood" in msg and "free space" in msg
    assert "deleting" in msg  # the store only saves time
