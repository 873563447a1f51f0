"""The methods, one module each. Every module in this folder is imported (and so registers itself) on first lookup;
adding a method is adding a file."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
