"""PMC's JSON API: the second entrypoint, beside :mod:`adapter.soap`.

``POST /api/v1/payment_notify`` and ``POST /api/v1/debt_query`` reach the same use
cases as InformarPago and ConsultarDeuda (:mod:`adapter.service.billing`), with the
same guarantees; ``GET /api/v1/openapi.json`` publishes the contract they are
validated against (``openapi.json`` here). The request is read once
(:mod:`.parsing`), validated against the contract (:mod:`.contract`), translated
from PMC's field names in one place (:mod:`.translation`), and answered by
:mod:`.gateway`.
"""
