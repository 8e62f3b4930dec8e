"""The book's chapters: where they are (``_toc.yml``) and which parameters they take.

A chapter notebook declares its parameters in ONE code cell tagged ``parameters``, one simple
literal assignment per line with a trailing comment that explains it::

    data = "twin:default"  # dataset spec: "twin:<profile>", a NetCDF path, or a real-data path
    seed = 0  # random seed
    output_dir = "."  # run folder for figures and results.json

The cell is read with :mod:`ast` (never executed), so ``v1nb list`` and the validation in
``v1nb run`` work without a kernel. Each parameter's type is that of its default literal
(``int``, ``float``, ``str``, ``bool``); values given on the command line are parsed into that
type, and anything else is rejected before a notebook is executed.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import nbformat
import yaml

#: Parameters every chapter declares; the runner always sets ``output_dir`` itself.
REQUIRED_PARAMETERS = ("data", "seed", "output_dir")
#: The types a parameter default may have (``None`` and containers are not command-line friendly).
PARAMETER_TYPES = (bool, int, float, str)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class ChapterError(ValueError):
    """A chapter notebook or the table of contents breaks the book's conventions."""


class ParameterError(ValueError):
    """A parameter given for a chapter is unknown or has the wrong type."""


@dataclass(frozen=True)
class Parameter:
    """One entry of a chapter's ``parameters`` cell.

    Attributes
    ----------
    name : str
    default : bool | int | float | str
    help : str
        The trailing comment on the assignment.
    """

    name: str
    default: Any
    help: str

    @property
    def type(self) -> type:
        return type(self.default)

    def parse(self, value: Any) -> Any:
        """Convert ``value`` (a command-line string or a Python value) to this parameter's type.

        ``int`` is accepted for a ``float`` parameter; a ``float`` is never truncated to ``int``.

        Raises
        ------
        ParameterError
            If ``value`` does not read as the default's type.
        """
        kind = self.type
        if not isinstance(value, str):
            if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if type(value) is kind:
                return value
            raise ParameterError(
                f"parameter {self.name!r} expects {kind.__name__} (default {self.default!r}), "
                f"got {type(value).__name__} {value!r}"
            )
        try:
            if kind is bool:
                low = value.strip().lower()
                if low in _TRUE:
                    return True
                if low in _FALSE:
                    return False
                raise ValueError
            if kind is int:
                return int(value)
            if kind is float:
                return float(value)
        except ValueError:
            expected = "true/false" if kind is bool else kind.__name__
            raise ParameterError(
                f"parameter {self.name!r} expects {expected} (default {self.default!r}), got {value!r}"
            ) from None
        return value


@dataclass(frozen=True)
class Chapter:
    """A notebook chapter of the book.

    Attributes
    ----------
    name : str
        Its short name: the notebook's file stem (``book/data/data.ipynb`` → ``data``).
    path : Path
        The source notebook.
    title : str
        The first ``# `` heading of the notebook.
    parameters : dict[str, Parameter]
        In the order of the parameters cell.
    """

    name: str
    path: Path
    title: str
    parameters: dict[str, Parameter] = field(default_factory=dict)

    @classmethod
    def from_notebook(cls, path: str | os.PathLike, name: str | None = None) -> "Chapter":
        """Read a chapter's title and parameters from its notebook (without executing it)."""
        path = Path(path)
        if not path.is_file():
            raise ChapterError(f"chapter notebook {path} does not exist")
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as exc:  # nbformat raises several types for corrupt JSON
            raise ChapterError(f"{path} is not a readable notebook: {exc}") from exc
        return cls(name or path.stem, path, _title(nb, path), read_parameters(nb, path))

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters.values()}

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The chapter's full parameter set: defaults updated by validated ``overrides``.

        Raises
        ------
        ParameterError
            For an unknown name or a value of the wrong type, listing the valid parameters.
        """
        values = self.defaults
        for name, value in (overrides or {}).items():
            if name not in self.parameters:
                raise ParameterError(
                    f"chapter {self.name!r} has no parameter {name!r}.\n{self.describe_parameters()}"
                )
            try:
                values[name] = self.parameters[name].parse(value)
            except ParameterError as exc:
                raise ParameterError(f"chapter {self.name!r}: {exc}.\n{self.describe_parameters()}") from None
        return values

    def describe_parameters(self) -> str:
        """A readable table of the parameters with their defaults and help."""
        lines = [f"Valid parameters of chapter {self.name!r} ({self.path}):"]
        width = max((len(p.name) for p in self.parameters.values()), default=0)
        for p in self.parameters.values():
            kind = f"({p.type.__name__})"
            lines.append(f"  {p.name:<{width}}  = {p.default!r:<16} {kind:<8} {p.help}")
        return "\n".join(lines)

    def content_hash(self) -> str:
        """SHA-256 of the notebook's cell types and sources (outputs and metadata ignored).

        Opening, saving or clearing a notebook does not change it; editing a cell does.
        """
        nb = nbformat.read(self.path, as_version=4)
        cells = [(c.cell_type, c.source) for c in nb.cells]
        return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def read_parameters(nb: nbformat.NotebookNode, path: Path | str = "<notebook>") -> dict[str, Parameter]:
    """Parse the cell tagged ``parameters`` into :class:`Parameter` objects.

    Raises
    ------
    ChapterError
        If there is not exactly one such cell, it holds anything but simple literal assignments,
        a default is not bool/int/float/str, or a required parameter is missing.
    """
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ChapterError(f"{path}: expected exactly one code cell tagged 'parameters', found {len(cells)}")
    source = cells[0].source
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ChapterError(f"{path}: parameters cell does not parse: {exc}") from exc
    comments = _line_comments(source)
    params: dict[str, Parameter] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ChapterError(
                f"{path}: parameters cell line {node.lineno}: only `name = literal  # help` assignments "
                f"are allowed, found {ast.get_source_segment(source, node)!r}"
            )
        name = node.targets[0].id
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            raise ChapterError(
                f"{path}: parameter {name!r} must have a literal default, found "
                f"{ast.get_source_segment(source, node.value)!r}"
            ) from None
        if type(default) not in PARAMETER_TYPES:
            raise ChapterError(
                f"{path}: parameter {name!r} has default {default!r}; expected a bool, int, float or str literal"
            )
        if name in params:
            raise ChapterError(f"{path}: parameter {name!r} is assigned twice")
        params[name] = Parameter(name, default, comments.get(node.end_lineno, ""))
    missing = [n for n in REQUIRED_PARAMETERS if n not in params]
    if missing:
        raise ChapterError(f"{path}: parameters cell lacks required parameter(s) {', '.join(missing)}")
    return params


def _line_comments(source: str) -> dict[int, str]:
    """Map line number → comment text (without ``#``) for every comment in ``source``."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def _title(nb: nbformat.NotebookNode, path: Path) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return Path(path).stem


# --- the table of contents -------------------------------------------------------------------


def find_root(start: str | os.PathLike | None = None) -> Path:
    """The book root: the nearest folder at or above ``start`` (default: cwd) holding ``_toc.yml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    raise ChapterError(f"no _toc.yml in {here} or any parent folder; pass the book root explicitly")


def toc_files(root: str | os.PathLike) -> list[str]:
    """The ``file:`` entries of ``<root>/_toc.yml`` (jb-book format) in reading order."""
    toc_path = Path(root) / "_toc.yml"
    try:
        toc = yaml.safe_load(toc_path.read_text())
    except FileNotFoundError:
        raise ChapterError(f"no table of contents at {toc_path}") from None
    except yaml.YAMLError as exc:
        raise ChapterError(f"{toc_path} is not valid YAML: {exc}") from exc
    if not isinstance(toc, dict) or "root" not in toc:
        raise ChapterError(f"{toc_path}: expected a jb-book table of contents with a 'root' entry")
    return [toc["root"], *_walk_files(toc)]


def _walk_files(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "file" in node:
            yield node["file"]
        for key in ("parts", "chapters", "sections"):
            yield from _walk_files(node.get(key, []))
    elif isinstance(node, list):
        for item in node:
            yield from _walk_files(item)


def book_chapters(root: str | os.PathLike) -> list[Chapter]:
    """The notebook chapters listed in ``_toc.yml``, in reading order (MyST pages are skipped).

    Raises
    ------
    ChapterError
        If an entry has no ``.ipynb``/``.md`` file, or two notebooks share a name.
    """
    root = Path(root)
    chapters: list[Chapter] = []
    for entry in toc_files(root):
        stem = root / entry
        if stem.suffix in (".ipynb", ".md"):
            stem = stem.with_suffix("")
        if stem.with_suffix(".ipynb").is_file():
            chapters.append(Chapter.from_notebook(stem.with_suffix(".ipynb")))
        elif not stem.with_suffix(".md").is_file():
            raise ChapterError(f"_toc.yml lists {entry!r} but neither {entry}.ipynb nor {entry}.md exists in {root}")
    names = [c.name for c in chapters]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ChapterError(f"chapter names must be unique (notebook file stems); repeated: {', '.join(dupes)}")
    return chapters


def find_chapter(spec: str | os.PathLike, root: str | os.PathLike | None = None) -> Chapter:
    """A chapter given by notebook path, or by name / toc entry (``data``, ``book/data/data``).

    Raises
    ------
    ChapterError
        If ``spec`` is neither an existing notebook nor a chapter of the book, listing the chapters.
    """
    path = Path(spec)
    if path.suffix == ".ipynb" and path.is_file():
        return Chapter.from_notebook(path)
    if root is None:
        root = find_root()
    chapters = book_chapters(root)
    key = str(spec).removesuffix(".ipynb")
    for chapter in chapters:
        entry = chapter.path.relative_to(Path(root)).with_suffix("").as_posix()
        if key in (chapter.name, entry):
            return chapter
    names = ", ".join(c.name for c in chapters) or "(none)"
    raise ChapterError(f"no chapter {str(spec)!r}: not a notebook file, and the book's chapters are: {names}")
