"""Run the benchmark modules in ``bench/`` (or those named on the command line): ``python -m bench [name ...]``.

A module that sets ``DEFAULT = False`` (a long one, such as ``real_singing``) runs only when named."""

import importlib
import pkgutil
import sys
from pathlib import Path


def main(names: list[str]) -> int:
    available = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))
    for name in names:
        if name not in available:
            print(f"unknown benchmark {name!r}; available: {', '.join(available)}", file=sys.stderr)
            return 2
    for name in names or available:
        module = importlib.import_module(f"bench.{name}")
        if not names and not getattr(module, "DEFAULT", True):
            print(f"== bench/{name}.py skipped (run it by name: python -m bench {name})", flush=True)
            continue
        print(f"== bench/{name}.py", flush=True)
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
