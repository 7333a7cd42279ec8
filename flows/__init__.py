"""Prefect flows over the sitescreen library; they orchestrate and hold no science."""
