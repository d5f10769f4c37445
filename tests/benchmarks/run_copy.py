"""Run ``python -m ktrace_decode`` from one checkout, whatever is installed.

    python tests/benchmarks/run_copy.py CHECKOUT ARGS...     # ktrace ARGS from CHECKOUT
    python tests/benchmarks/run_copy.py CHECKOUT --probe     # where each package comes from

The package is laid out by ``pyproject.toml``'s ``package-dir``
(``ktrace_decode.formats`` lives in ``formats/``, and so on): ``PYTHONPATH``
alone would import ``ktrace_decode`` from the checkout but its mapped
subpackages from wherever the package is installed (an editable install
maps them to *its* checkout).  A finder put first on ``sys.meta_path``
maps every package of the table to CHECKOUT's directories.  Used by ab.py.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import runpy
import sys
import tomllib
from pathlib import Path


class _Checkout:
    """Finds the packages of ``dirs`` (name -> directory) and nothing else."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs

    def find_spec(self, name: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        d = self.dirs.get(name)
        if d is None:
            return None
        return importlib.util.spec_from_file_location(
            name, d / "__init__.py", submodule_search_locations=[str(d)])


def main() -> None:
    root = Path(sys.argv[1]).resolve()
    table = tomllib.loads((root / "pyproject.toml").read_text())
    dirs = {name: root / d for name, d in table["tool"]["setuptools"]["package-dir"].items()}
    sys.meta_path.insert(0, _Checkout(dirs))
    if sys.argv[2:] == ["--probe"]:
        for name in dirs:
            print(name, Path(importlib.import_module(name).__file__).parent)
        return
    sys.argv = ["ktrace", *sys.argv[2:]]
    runpy.run_module("ktrace_decode", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
