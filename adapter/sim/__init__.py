"""The bundled stand-ins, for demos, tests and QA: the reference legacy ERP
(:mod:`adapter.sim.erp`, ``pmc-adapter erp-sim``) and a simulator of PMC's collection API
(:mod:`adapter.sim.pmc`, ``pmc-adapter pmc-sim``). The adapter itself never imports them
(a test of the import graph says so); they import its parts (the ERP's codec, the API's
contract) to speak as the real systems do."""
