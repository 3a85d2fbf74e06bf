"""Outbound adapter: the biller's ERP. ``connector.py`` says what the adapter needs
from any ERP; ``legacy.py`` speaks the bundled legacy ERP's SOAP contract."""
