"""PMC adapter: the biller's side of PagoMisCuentas' online services."""

from adapter import spyne_compat

spyne_compat.apply()  # before anything imports spyne (see adapter/spyne_compat.py)

__version__ = "0.2.0"  # the one place: setup.cfg reads it (version = attr: adapter.__version__)
