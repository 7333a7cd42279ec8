"""Everything a run writes: the run folder, GIS files, charts, the summary, the report, changes."""
