"""Fingerprints of code: what decides whether a cached result (a fitted model, an executed chapter) is stale.

One implementation shared by the model cache (:mod:`v1nb.models.cache`) and the chapter runner's run
cache. A fingerprint covers what the code *does*: the syntax tree of every Python file, without
docstrings, comments or layout, so that editing prose never forces a refit (a default book refits
for many minutes) while any change to a statement does.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
from pathlib import Path
from typing import Callable, Iterable


def source_fingerprint(source: str) -> str:
    """The syntax tree of Python ``source`` without docstrings, as text.

    Parameters
    ----------
    source : str
        Python source code.

    Returns
    -------
    str
        ``ast.dump`` of the tree with module, class and function docstrings removed.
    """
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def python_files(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``*.py`` file under the given files and folders (recursively), sorted, without duplicates."""
    files: set[Path] = set()
    for path in map(Path, paths):
        if path.is_dir():
            files.update(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        elif path.suffix == ".py":
            files.add(path)
        else:
            raise FileNotFoundError(f"{path}: not a Python file or folder to fingerprint")
    return sorted(files)


def package_fingerprint(paths: Iterable[str | Path], functions: Iterable[Callable] = (),
                        root: str | Path | None = None) -> str:
    """SHA-256 over Python files (names relative to ``root`` and :func:`source_fingerprint`) and functions.

    Parameters
    ----------
    paths : files or folders
        Folders are searched recursively for ``*.py``.
    functions : callables
        Single functions whose source counts too (e.g. the metric that drives early stopping)
        without fingerprinting their whole module.
    root : path, optional
        File names are hashed relative to it (default: the common parent), so a checkout in another
        folder gives the same fingerprint.
    """
    files = python_files(paths)
    base = Path(root) if root is not None else (Path(*Path(files[0]).parts[:1]) if files else Path("."))
    digest = hashlib.sha256()
    for path in files:
        try:
            name = path.resolve().relative_to(Path(base).resolve()).as_posix()
        except ValueError:
            name = path.name
        digest.update(name.encode())
        digest.update(source_fingerprint(path.read_text(encoding="utf-8")).encode())
    for fn in functions:
        digest.update(f"{fn.__module__}.{fn.__qualname__}".encode())
        digest.update(source_fingerprint(inspect.cleandoc("\n" + inspect.getsource(fn))).encode())
    return digest.hexdigest()
