"""PMC's collection API: the client (:mod:`adapter.pmc.client`) and the bundled
simulator (:mod:`adapter.pmc.simulator`)."""
