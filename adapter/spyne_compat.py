"""spyne 2.14 (its last release, 2019) on Python 3.12 and 3.13.

``adapter/__init__.py`` imports this module first thing, so it is in force
before any ``adapter`` module -- or a test, whose ``conftest.py`` imports
``adapter`` at the top -- imports spyne. It changes nothing that spyne has not
got wrong, and does nothing where spyne already works: it can stay when a
fixed spyne arrives.

What each Python needs:

* **3.12 -- six's importer.** spyne bundles six 1.14 as ``spyne.util.six``, and
  ``spyne.util.six.moves.*`` (``import`` of which is the first thing spyne does)
  is served by a ``sys.meta_path`` importer that implements only PEP 302's
  ``find_module``/``load_module``. Python 3.12 stopped calling those
  (meta path finders must have ``find_spec``), and ``import spyne`` fails with
  ``ModuleNotFoundError: No module named 'spyne.util.six.moves'``. Below, as
  soon as ``spyne.util.six`` has run, its importer class gets the
  ``find_spec``/``create_module``/``exec_module`` that six 1.16 added for the
  same reason. Applied on every Python: on 3.11 it also spares the "falling
  back to find_module()" ImportWarning.
* **3.13 -- the ``cgi`` module** (PEP 594 removed it; spyne imports it in its
  SOAP and WSGI modules for ``cgi.parse_header``): ``install_requires`` brings
  ``legacy-cgi`` there (``python_version >= "3.13"``), the removed module kept
  on PyPI, so there is nothing to do here.

The rest of what 3.12/3.13 deprecate in spyne (``datetime.utcnow()``, invalid
escape sequences) only warns.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys

SIX = "spyne.util.six"


def _find_spec(self, fullname, path=None, target=None):
    if fullname in self.known_modules:
        return importlib.util.spec_from_loader(fullname, self)
    return None


def _create_module(self, spec):
    module = self.load_module(spec.name)
    # Python now stamps ``spec`` on what load_module returned, which may be a real
    # module (``collections.abc`` for ``moves.collections_abc``): exec_module gives
    # such a module its own spec back (six 1.16 leaves it stamped).
    self.__dict__.setdefault("_own_specs", {})[spec.name] = getattr(module, "__spec__", None)
    return module


def _exec_module(self, module):
    # (load_module, called by create_module, did the loading)
    own = self.__dict__.get("_own_specs", {}).pop(module.__spec__.name, None)
    if own is not None:
        module.__spec__ = own


def patch_six(six) -> None:
    """Give a six (< 1.16) module's ``moves`` importer the PEP 451 protocol."""
    importer = six._SixMetaPathImporter
    if "find_spec" not in vars(importer):
        importer.find_spec = _find_spec
        importer.create_module = _create_module
        importer.exec_module = _exec_module


class _PatchSixWhenLoaded(importlib.abc.MetaPathFinder):
    """Finds ``spyne.util.six`` as Python would, and patches it right after it runs
    (its last line puts its importer on ``sys.meta_path``), before spyne uses it."""

    def find_spec(self, fullname, path, target=None):
        if fullname != SIX:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module):
            run(module)
            patch_six(module)

        loader.exec_module = exec_module  # this module's own loader object only
        return spec


def apply() -> None:
    if SIX in sys.modules:
        patch_six(sys.modules[SIX])
    elif not any(isinstance(finder, _PatchSixWhenLoaded) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchSixWhenLoaded())
