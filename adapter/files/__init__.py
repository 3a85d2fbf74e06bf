"""The network's files: one module per format, its reader and writer, streaming, no
database (:mod:`.fac` the billing base, :mod:`.cob` the payment report,
:mod:`.invoice_csv` the biller's invoice list, :mod:`.fixed_width` what the two
fixed-width formats share), and the transfer beside them (:mod:`.ftps`, the network's
FTPS server). The use cases that import, send and reconcile them are in
:mod:`adapter.service`."""
