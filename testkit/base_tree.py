"""Run ``rawws`` from another source tree (an earlier commit, unpacked) in place of the installed one.

    python -m testkit.base_tree DIR serve --echo ...

The side-by-side measurements (``bench/hot_path.py``, and the studies in
``experiments/perf/`` with ``--base-tree DIR``) compare a change with the code
before it in the same run: the editable install's import hook is removed, so
``import rawws`` finds ``DIR/rawws``. It lives here, not in ``experiments/``,
because ``bench/`` uses it too and ``bench/`` imports no study. Standard library
only, like the rest of ``testkit``.
"""

from __future__ import annotations

import sys


def main() -> None:
    tree = sys.argv[1]
    sys.meta_path[:] = [
        finder
        for finder in sys.meta_path
        if "__editable__" not in getattr(finder, "__module__", "")
    ]
    sys.path.insert(0, tree)
    for name in [
        module
        for module in sys.modules
        if module == "rawws" or module.startswith("rawws.")
    ]:
        del sys.modules[name]
    from rawws.cli import main as rawws_main

    if not sys.modules["rawws"].__file__.startswith(tree):  # type: ignore[union-attr]
        raise SystemExit(f"rawws was not imported from {tree}")
    sys.exit(rawws_main(sys.argv[2:]))


if __name__ == "__main__":
    main()
