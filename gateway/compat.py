"""Spyne 2.14 on Python 3.12 and 3.13: the one compatibility shim, run before spyne is imported.

Spyne (the latest release, 2.14) bundles a copy of `six` 1.14 as `spyne.util.six`. That copy
registers a meta path importer for its `six.moves` modules that only has the legacy
`find_module`/`load_module` API; Python 3.12 removed the fallback to that API from the import
system, so `import spyne` fails with "No module named 'spyne.util.six.moves'". The finder
below answers `find_spec` for those names and lets the bundled importer load them, as newer
`six` releases do themselves. It is installed on every Python (3.11 included), so all of
them take the same import path.

Python 3.13 removed the `cgi` module, which spyne's WSGI server and SOAP protocol import
for `cgi.parse_header`: the maintained `legacy-cgi` package (a dependency on 3.13 and later,
see setup.cfg) puts it back; nothing here is needed for it.

`gateway/__init__.py` imports this module, so anything under `gateway` may import spyne.
Code that imports spyne without importing `gateway` first must call `install()`.
"""

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

_BUNDLED_SIX = "spyne.util.six."


class _Loader(importlib.abc.Loader):
    """Loads one `spyne.util.six.moves...` name with the bundled six's own importer.

    Most of those names are aliases of standard modules (`...moves.collections_abc` is
    `collections.abc`). The import system stamps the alias's spec on whatever module
    `create_module` returns; `exec_module` puts the standard module's own spec back, as the
    legacy `load_module` path of Python 3.11 left it."""

    def __init__(self, importer: Any) -> None:
        self.importer = importer
        self.own_spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module: ModuleType = self.importer.load_module(spec.name)
        self.own_spec = getattr(module, "__spec__", None)
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (`load_module` returned a finished module): restore its spec."""
        if self.own_spec is not None:
            module.__spec__ = self.own_spec


class BundledSixFinder(importlib.abc.MetaPathFinder):
    """`find_spec` for the modules the bundled six's importer knows (`known_modules`)."""

    def find_spec(self, fullname: str, path: Any = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_BUNDLED_SIX):
            return None
        for importer in sys.meta_path:
            known = getattr(importer, "known_modules", None)
            if importer is not self and isinstance(known, dict) and fullname in known:
                return importlib.util.spec_from_loader(fullname, _Loader(importer))
        return None


def install() -> None:
    """Put the finder first on `sys.meta_path` (once)."""
    if not any(isinstance(finder, BundledSixFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, BundledSixFinder())


install()
