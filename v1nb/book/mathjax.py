"""Sphinx extension: the book serves MathJax from its own ``_static`` folder, not from a CDN.

Sphinx's default ``mathjax_path`` is a CDN address, so a book opened without internet shows raw
LaTeX (``\\(\\mathrm{ELU}(\\hat y + b) + 1\\)``). The MathJax 3.2.2 distribution ships inside the
PyPI package ``sphinx-mathjax-offline`` (a ``book`` extra of v1nb); this extension adds its
``static/`` folder to ``html_static_path`` (HTML builders copy it to ``_build/html/_static/``;
the LaTeX builder does not) and points ``mathjax_path`` at the local ``tex-mml-chtml.js``, the
component Sphinx loads from the CDN by default.

Enabled in ``_config.yml``::

    sphinx:
      extra_extensions:
        - v1nb.book.mathjax
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

#: The PyPI distribution holding the MathJax files (its import name has hyphens).
PACKAGE = "sphinx-mathjax-offline"
#: The MathJax component, relative to ``_static`` (TeX and MathML input, CommonHTML output).
COMPONENT = "mathjax/tex-mml-chtml.js"


def static_dir() -> Path:
    """The folder holding ``mathjax/`` (copied as is into the book's ``_static``).

    Raises
    ------
    RuntimeError
        If the package is not installed or lacks the MathJax component.
    """
    spec = find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        static = Path(location) / "static"
        if (static / COMPONENT).is_file():
            return static
    raise RuntimeError(
        f"MathJax for the offline book not found: the package {PACKAGE!r} is not installed or has no "
        f"static/{COMPONENT}; install the book extra (`pip install -e \".[book]\"`)"
    )


def _use_local_mathjax(app: Any, config: Any) -> None:
    config.mathjax_path = COMPONENT
    config.html_static_path = [*config.html_static_path, str(static_dir())]


def setup(app: Any) -> dict[str, Any]:
    """Register the ``config-inited`` hook (Sphinx extension entry point)."""
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("config-inited", _use_local_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
