"""The back office in a browser (:mod:`adapter.console.app`)."""
