"""Load a bench script as a module: bench/ scripts are run by path, not imported as a package."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType


def load_script(path: Path, name: str) -> Iterator[ModuleType]:
    """Yield the script at ``path`` as module ``name``; unregister it afterwards."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
