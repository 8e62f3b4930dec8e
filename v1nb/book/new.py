"""``v1nb new <part>/<name> "Question?"``: start a chapter that follows the book's conventions.

It writes ``book/<part>/<name>.ipynb`` and adds ``- file: book/<part>/<name>`` to ``_toc.yml``
(after the last chapter of the part whose chapters live in ``book/<part>/``, or in a new part
before the back matter), editing the file as text so that its comments stay. The notebook runs at
once (``v1nb run <name> -p data twin:quick``) and holds what every chapter has:

1. a title and the question;
2. the ``parameters`` cell (tagged ``parameters``): ``data``, ``seed``, ``output_dir``, one
   ``name = literal  # help`` line each;
3. the :class:`~v1nb.book.report.Report`, the dataset from :func:`v1nb.data.open_dataset`;
4. a first description of the data (numbers through ``report.value``, a figure through
   ``report.figure``);
5. an ``Answer`` section, and ``report.save()`` as the last cell.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

from v1nb.book.chapters import ChapterError, book_chapters, read_parameters, toc_files
from v1nb.io import atomic_path

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ROMAN = [(10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]


@dataclass(frozen=True)
class NewChapter:
    """What :func:`new_chapter` wrote."""

    name: str
    part: str
    notebook: Path
    toc: Path
    toc_entry: str


def new_chapter(root: str | os.PathLike, entry: str, question: str, *, title: str | None = None) -> NewChapter:
    """Write a chapter notebook and its ``_toc.yml`` line.

    Parameters
    ----------
    root : path
        The book root (holds ``_toc.yml`` and ``book/``).
    entry : str
        ``"<part>/<name>"``: lower-case words with underscores; ``name`` must be a new chapter name.
    question : str
        The question the chapter answers (shown under the title).
    title : str, optional
        Default: ``name`` with spaces, capitalised.

    Raises
    ------
    ChapterError
        A malformed ``entry``, an empty question, a name the book already uses, or a
        ``_toc.yml`` without parts. ``FileExistsError`` if the notebook exists.
    """
    root = Path(root)
    part, sep, name = entry.strip().strip("/").removeprefix("book/").partition("/")
    if not sep or not _NAME.match(part) or not _NAME.match(name):
        raise ChapterError(
            f"expected PART/NAME (lower-case letters, digits, underscores; e.g. population/tuning), got {entry!r}"
        )
    if not question.strip():
        raise ChapterError("the question is empty; give the question the chapter answers, in quotes")
    taken = {c.name for c in book_chapters(root)} | {Path(f).name for f in toc_files(root)}
    if name in taken:
        raise ChapterError(f"the book already has a chapter or page named {name!r}; chapter names must be unique")
    notebook = root / "book" / part / f"{name}.ipynb"
    if notebook.exists():
        raise FileExistsError(f"{notebook} exists; choose another name")
    toc = root / "_toc.yml"
    toc_entry = f"book/{part}/{name}"
    text = add_to_toc(toc.read_text(), part, toc_entry)

    nb = chapter_notebook(name, question.strip(), title or name.replace("_", " ").capitalize())
    read_parameters(nb, notebook)  # the template itself keeps the conventions
    with atomic_path(notebook) as tmp:
        nbformat.write(nb, tmp)
    try:
        with atomic_path(toc) as tmp:
            tmp.write_text(text)
    except BaseException:
        notebook.unlink(missing_ok=True)
        raise
    return NewChapter(name, part, notebook, toc, toc_entry)


def add_to_toc(text: str, part: str, toc_entry: str) -> str:
    """``_toc.yml`` text with ``- file: <toc_entry>`` added to the part of ``book/<part>/``.

    The line goes after the last entry (and its sections) in ``book/<part>/``; without one, a new
    part ``"Part <next numeral> — <Part>"`` is added before the ``Back matter`` part (or last).
    Comments and layout are kept: the file is edited as text, then checked as YAML.
    """
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if not isinstance(yaml.safe_load(text), dict) or "parts" not in yaml.safe_load(text):
        raise ChapterError("_toc.yml has no `parts:`; add the chapter's `- file:` line by hand")
    file_line = re.compile(rf"^(\s*)-\s*file:\s*['\"]?book/{re.escape(part)}/[^\s'\"]+['\"]?\s*(#.*)?$")
    matches = [(i, m) for i, line in enumerate(lines) if (m := file_line.match(line.rstrip("\n")))]
    if matches:
        level = min(len(m.group(1)) for _, m in matches)  # chapters, not their sections
        i, m = [(i, m) for i, m in matches if len(m.group(1)) == level][-1]
        indent = m.group(1)
        j = i + 1  # past this entry's own nested lines (sections:, title:)
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > len(indent)):
            j += 1
        while j > i + 1 and not lines[j - 1].strip():  # but not past trailing blank lines
            j -= 1
        lines.insert(j, f"{indent}- file: {toc_entry}\n")
    else:
        caption = re.compile(r"^(\s*)-\s*caption:\s*(.*?)\s*$")
        captions = [(i, m) for i, line in enumerate(lines) if (m := caption.match(line.rstrip("\n")))]
        indent = captions[0][1].group(1) if captions else "  "
        back = [i for i, m in captions if m.group(2).strip("'\"").lower().startswith("back matter")]
        numbered = sum(1 for _, m in captions if re.match(r"^['\"]?Part [IVXLC]+\b", m.group(2)))
        label = part.replace("_", " ").capitalize()
        title = f"Part {_roman(numbered + 1)} — {label}" if numbered else label
        block = [f'{indent}- caption: "{title}"\n', f"{indent}  chapters:\n", f"{indent}    - file: {toc_entry}\n"]
        at = back[0] if back else len(lines)
        lines[at:at] = block
    out = "".join(lines)
    try:
        parsed = yaml.safe_load(out)
    except yaml.YAMLError as exc:  # pragma: no cover - the edit keeps the structure
        raise ChapterError(f"could not add {toc_entry} to _toc.yml: the result is not valid YAML ({exc})") from exc
    if toc_entry not in _files(parsed):
        raise ChapterError(f"could not add {toc_entry} to _toc.yml automatically; add `- file: {toc_entry}` by hand")
    return out


def chapter_notebook(name: str, question: str, title: str) -> nbformat.NotebookNode:
    """The notebook of a new chapter (see the module docstring); committed without outputs."""
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [
        md(f"# {title}\n\n**Question.** {question}\n\n"
           "This chapter reads its data with `v1nb.data.open_dataset` (by default the digital twin, whose "
           "ground truth makes an answer checkable) and records every number it reports in its run "
           "folder's `results.json`."),
        code('data = "twin:default"  # dataset spec: "twin:<profile>", a NetCDF file in the v1nb schema, '
             'or a real-data path\n'
             "seed = 0  # random seed (the twin's; ignored for recorded data)\n"
             'output_dir = "."  # run folder for figures and results.json',
             metadata={"tags": ["parameters"]}),
        code("import matplotlib.pyplot as plt\n"
             "import numpy as np\n\n"
             "from v1nb.book.report import Report\n"
             "from v1nb.data import open_dataset\n\n"
             f'report = Report("{name}", output_dir, parameters=dict(data=data, seed=seed))\n'
             'ds = open_dataset(data, seed=seed) if data.startswith("twin") else open_dataset(data)\n'
             "report.record_data(ds)\n"
             'print(ds.attrs["source"], dict(ds.sizes))'),
        md("## The data\n\nEach neuron's mean response over all trials (`responses` is trial × neuron in "
           "the v1nb schema)."),
        code('responses = ds["responses"].values\n'
             'report.value("n_neurons", ds.sizes["neuron"])\n'
             'report.value("n_trials", ds.sizes["trial"])\n'
             'report.value("median_mean_response", float(np.nanmedian(np.nanmean(responses, axis=0))), "{:.3g}")\n\n'
             "fig, ax = plt.subplots(figsize=(4, 2.5))\n"
             "ax.hist(np.nanmean(responses, axis=0), bins=30)\n"
             'ax.set(xlabel="mean response", ylabel="neurons")\n'
             f'report.figure(fig, "mean_responses")\n'
             "plt.show()"),
        md("## Answer\n\n"
           "The dataset has {glue:text}`n_neurons` neurons and {glue:text}`n_trials` trials; the median "
           "neuron's mean response is {glue:text}`median_mean_response`.\n\n"
           "*The question is not answered yet.* Write the analysis that answers it as a function in the "
           "`v1nb` package (so that it is tested and the notebook stays thin), call it above, record its "
           "numbers with `report.value` and state the answer here with `{glue:text}` references to them."),
        code("report.save()"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    return nb


def _files(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node["file"])
        for key in ("parts", "chapters", "sections"):
            out.extend(_files(node.get(key, [])))
    elif isinstance(node, list):
        for item in node:
            out.extend(_files(item))
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _roman(number: int) -> str:
    out = ""
    for value, numeral in _ROMAN:
        while number >= value:
            out += numeral
            number -= value
    return out
