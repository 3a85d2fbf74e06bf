"""PMC adapter: the biller's side of PagoMisCuentas' online services."""

__version__ = "0.1.0"
