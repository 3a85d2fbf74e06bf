"""Use cases: what PMC and the biller's web/app can ask, over a unit of work."""
