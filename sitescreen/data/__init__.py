"""Hazard data on disk and on the wire: data folders, catalog datasets, downloads, archives."""
