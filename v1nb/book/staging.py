"""What a reader sees of an executed chapter: the staging step's edits to notebooks and pages.

The runner keeps each executed notebook as papermill wrote it (the run folder is a record). The
book shows a presented copy (:func:`present_notebook`):

- **Parameters once.** papermill adds an ``injected-parameters`` cell after the chapter's own
  ``parameters`` cell, so a page would list the parameters twice, first with the defaults.
  The presented copy drops the injected cell and writes the values the run actually used into
  the chapter's cell, keeping each line's help comment and naming the default where it differs.
- **Bookkeeping out of the prose.** The cell that calls ``report.save()`` ends the Answer
  section; its output ("... recorded in results.json") is hidden (``remove-cell`` when the cell
  does nothing else, ``remove-output`` otherwise). A cell that ends with ``report.value(...)``
  (which returns its value) does not echo that bare number.

The **Discussion** page (back matter) holds the marker ``<!-- v1nb:answers -->``, which staging
replaces by every chapter's question and Answer section in book order (:func:`answers_markdown`),
taken from the executed notebooks. Its numbers are cross-document glue references
(``{glue:text}`/book/data/data.ipynb::median_oracle```) to the values the chapter recorded with
``report.value`` (the names and values of ``results.json``), so nothing is retyped; a chapter
appears when it is in ``_toc.yml`` and has a run, whatever part it belongs to.
"""

from __future__ import annotations

import ast
import json
import posixpath
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import nbformat

#: Marker line in a MyST page that staging replaces by every chapter's question and answer.
ANSWERS_MARKER = "<!-- v1nb:answers -->"
_SAVE_CALL = re.compile(r"\breport\.save\(\s*\)")
#: ``{glue}`key```, ``{glue:text}`key:.2f```, ``{glue:md}`key``` ... (no ``doc::`` part yet).
_GLUE_ROLE = re.compile(r"\{(glue(?::[a-z]*)?)\}`(?![^`]*::)([^`]+)`")
_DOC_ROLE = re.compile(r"\{doc\}`([^`<]*<)?([^`>]+)(>?)`")
_ANSWER_HEADING = re.compile(r"^(#{2,3})\s+Answer\s*$", re.MULTILINE)


class StagingError(ValueError):
    """An executed chapter cannot be presented (it breaks the book's conventions)."""


# --- one chapter's page ------------------------------------------------------------------------


def present_notebook(nb: nbformat.NotebookNode, parameters: Mapping[str, Any],
                     defaults: Mapping[str, Any] | None = None) -> nbformat.NotebookNode:
    """Return a copy of an executed chapter as the book shows it (see the module docstring).

    Parameters
    ----------
    nb : NotebookNode
        The executed notebook (papermill's output).
    parameters : mapping
        Every parameter value the run used (``RunResult.parameters``).
    defaults : mapping, optional
        The chapter's defaults; a value that differs is annotated with its default.
    """
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # deep copy, same node types
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "parameters" in cell.metadata.get("tags", []):
            cell.source = parameters_source(cell.source, parameters, defaults or {})
            continue
        if _ends_with_report_call(cell.source):
            # report.value() returns its value, so a cell ending with one echoes a bare number
            cell.outputs = [o for o in cell.get("outputs", []) if o.get("output_type") != "execute_result"]
        elif _SAVE_CALL.search(cell.source):
            code = [line.split("#")[0].strip() for line in cell.source.splitlines()]
            only_save = all(_SAVE_CALL.fullmatch(line) or not line for line in code)
            tags = list(cell.metadata.get("tags", []))
            tag = "remove-cell" if only_save else "remove-output"
            if tag not in tags:
                cell.metadata["tags"] = [*tags, tag]
    return nb


def _ends_with_report_call(source: str) -> bool:
    try:
        body = ast.parse(source).body
    except SyntaxError:  # IPython magics: leave the cell alone
        return False
    last = body[-1] if body else None
    return (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
            and isinstance(last.value.func, ast.Attribute) and last.value.func.attr in ("value", "figure")
            and isinstance(last.value.func.value, ast.Name) and last.value.func.value.id == "report")


def parameters_source(source: str, parameters: Mapping[str, Any], defaults: Mapping[str, Any]) -> str:
    """``source`` (a ``name = literal  # help`` cell) with each literal replaced by the used value.

    Lines whose name is not in ``parameters`` stay as they are; a changed value gets
    ``(default <literal>)`` at the front of its comment.
    """
    lines = source.splitlines()
    tree = ast.parse(source)
    # edit bottom-up so earlier offsets stay valid
    for node in sorted(tree.body, key=lambda n: n.lineno, reverse=True):
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        if name not in parameters or node.lineno != node.end_lineno:
            continue
        row = node.lineno - 1
        line = lines[row]
        start = len(line.encode()[: node.value.col_offset].decode())
        end = len(line.encode()[: node.value.end_col_offset].decode())
        value = parameters[name]
        rest = line[end:]
        if name in defaults and defaults[name] != value and name != "output_dir":
            # at the front of the comment, where a reader sees it without scrolling
            note = f"(default {_literal(defaults[name])})"
            hash_at = rest.find("#")
            rest = f"{rest[:hash_at + 1]} {note}{rest[hash_at + 1:]}" if hash_at >= 0 else f"{rest}  # {note}"
        lines[row] = line[:start] + _literal(value) + rest
    return "\n".join(lines)


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid Python literal, double-quoted like the sources
    return repr(value)


# --- the discussion ----------------------------------------------------------------------------


def answers_markdown(chapters: Iterable[tuple[Any, Path, Mapping[str, Any]]]) -> str:
    """MyST for the Discussion page: each chapter's question and Answer section, glued across pages.

    Parameters
    ----------
    chapters : iterable of (chapter, docpath, run)
        In book order: the :class:`~v1nb.book.chapters.Chapter`, its path relative to the book
        root (``book/data/data.ipynb``) and a mapping with the run's ``notebook`` (executed
        notebook path), ``parameters`` and ``values`` (``results.json``'s values).

    Raises
    ------
    StagingError
        A chapter has no ``## Answer`` section, or its answer glues a name that the chapter did not
        record with ``report.value`` (so it is not in ``results.json``).
    """
    blocks = []
    for chapter, docpath, run in chapters:
        nb = nbformat.read(run["notebook"], as_version=4)
        docpath = Path(docpath).as_posix()
        question = _question(nb)
        answer = _answer(nb, docpath)
        missing = sorted(set(_glue_keys(question + answer)) - set(run["values"]))
        if missing:
            raise StagingError(
                f"{docpath}: the Answer section glues {', '.join(missing)}, which the chapter did not record "
                f"with report.value (not in its results.json)"
            )
        data = run["parameters"].get("data", "")
        seed = run["parameters"].get("seed", "")
        lines = [
            f"### {chapter.title}",
            "",
            f"{{doc}}`Chapter </{posixpath.splitext(docpath)[0]}>` · `v1nb run {chapter.name}` · data `{data}`, seed {seed}",
            "",
        ]
        if question:
            lines += [_cross_doc(question, docpath), ""]
        lines += [_cross_doc(answer, docpath), ""]
        blocks.append("\n".join(lines))
    if not blocks:
        return "*The book has no notebook chapters yet.*"
    return "\n".join(blocks)


def _question(nb: nbformat.NotebookNode) -> str:
    """The paragraph starting with ``**Question.**`` in the chapter's first markdown cells."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for paragraph in re.split(r"\n\s*\n", cell.source):
            if paragraph.lstrip().startswith("**Question"):
                return paragraph.strip()
    return ""


def _answer(nb: nbformat.NotebookNode, docpath: str) -> str:
    """The Answer section's markdown: from ``## Answer`` to the next heading of its level or code."""
    parts: list[str] = []
    level = None
    for cell in nb.cells:
        if level is None:
            if cell.cell_type == "markdown" and (m := _ANSWER_HEADING.search(cell.source)):
                level = len(m.group(1))
                parts.append(cell.source[m.end():])
            continue
        if cell.cell_type != "markdown":
            if not "".join(parts).strip():
                continue  # the code that computes the answer, between the heading and its text
            break
        parts.append(cell.source)
    if level is None:
        raise StagingError(f"{docpath}: no '## Answer' section; every chapter ends with one (book conventions)")
    text = "\n\n".join(parts)
    stop = re.search(rf"^#{{1,{level}}}\s", text, re.MULTILINE)  # a later section of the same level
    text = text[: stop.start()] if stop else text
    # the chapter's own sub-headings become bold lines under this page's chapter heading
    text = re.sub(r"^#{3,6}\s+(.+)$", r"**\1**", text, flags=re.MULTILINE)
    return text.strip()


def _glue_keys(text: str) -> list[str]:
    return [m.group(2).split(":")[0] for m in _GLUE_ROLE.finditer(text)]


def _cross_doc(text: str, docpath: str) -> str:
    """Point the chapter's glue and ``{doc}`` references at the chapter from another page."""
    def glue(m: re.Match) -> str:
        role, key = m.group(1), m.group(2)
        if role == "glue:text" and ":" not in key:
            key += ":s"  # the role splits a format spec off at the last colon, so "doc::key" needs one
        return f"{{{role}}}`/{docpath}::{key}`"

    text = _GLUE_ROLE.sub(glue, text)
    folder = posixpath.dirname(docpath)

    def doc(m: re.Match) -> str:
        target = m.group(2)
        if not target.startswith("/"):
            target = "/" + posixpath.normpath(posixpath.join(folder, target))
        return f"{{doc}}`{m.group(1) or ''}{target}{m.group(3)}`"

    return _DOC_ROLE.sub(doc, text)
