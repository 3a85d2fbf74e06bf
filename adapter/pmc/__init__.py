"""PMC's collection API: the client (:mod:`adapter.pmc.client`); its simulator is in
:mod:`adapter.sim.pmc`."""
