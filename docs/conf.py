"""Sphinx configuration of the manual (``sphinx-build -W --keep-going -b html docs OUT``).

Nothing here reaches the network: no intersphinx, the built-in alabaster theme. The
extension in _ext/ renders the settings' tables from adapter/config.py, checks every
path the manual names (``:source:``) and collects the examples tests/e2e/test_docs.py runs.
"""
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS / "_ext"), str(DOCS.parent)]  # the extension; the adapter

import adapter  # noqa: E402

project = "pmc-adapter"
author = "the pmc-adapter authors"
copyright = "the pmc-adapter authors"
version = release = adapter.__version__

extensions = ["pmcdocs"]
root_doc = "index"
exclude_patterns = ["_build"]
templates_path = []
html_static_path = []
html_theme = "alabaster"
html_theme_options = {"description": "the biller's side of PagoMisCuentas",
                      "page_width": "1100px", "body_max_width": "none"}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
html_show_sourcelink = False
# Every reference must resolve; the manual's are to its own sections (:ref:).
nitpicky = True
# ``code`` is a literal, never a cross-reference to guess
default_role = "literal"
highlight_language = "none"
language = "en"
