"""The PDF: Jupyter Book's LaTeX builder with pdflatex, and the Unicode the book's text uses.

pdflatex reads UTF-8 through ``inputenc``, which knows Latin-1 letters, dashes and quotes but not
``−``, ``≈``, ``≥``, ``α`` or ``→``: one such character in a chapter's prose or output stops
the PDF with "Unicode character − (U+2212) not set up for use with LaTeX". The staging step
therefore scans the staged book for non-ASCII characters and declares each one that needs it
(:func:`unicode_preamble`) in the staged ``_config.yml`` (``latex_elements.preamble``), so the
sources keep their natural typography. A character with no known LaTeX form is printed as
``[U+XXXX]`` and listed in a warning, never silently dropped.

Debian packages for the build: ``latexmk texlive-latex-extra texlive-fonts-recommended tex-gyre``.
"""

from __future__ import annotations

import unicodedata
import warnings
from pathlib import Path
from typing import Iterable

import yaml

#: Characters inputenc does not set up, or sets up for text mode only (they occur in math too).
SYMBOLS = {
    "−": r"\ensuremath{-}", "≈": r"\ensuremath{\approx}", "≤": r"\ensuremath{\le}", "≥": r"\ensuremath{\ge}",
    "≠": r"\ensuremath{\neq}", "∼": r"\ensuremath{\sim}", "≡": r"\ensuremath{\equiv}", "∝": r"\ensuremath{\propto}",
    "×": r"\ensuremath{\times}", "·": r"\ensuremath{\cdot}", "±": r"\ensuremath{\pm}", "°": r"\ensuremath{^{\circ}}",
    "√": r"\ensuremath{\surd}", "∑": r"\ensuremath{\sum}", "∞": r"\ensuremath{\infty}", "∈": r"\ensuremath{\in}",
    "∉": r"\ensuremath{\notin}", "⊂": r"\ensuremath{\subset}", "∪": r"\ensuremath{\cup}", "∩": r"\ensuremath{\cap}",
    "‖": r"\ensuremath{\Vert}", "∗": r"\ensuremath{\ast}", "∘": r"\ensuremath{\circ}", "′": r"\ensuremath{'}",
    "∂": r"\ensuremath{\partial}", "∇": r"\ensuremath{\nabla}", "∫": r"\ensuremath{\int}", "⟨": r"\ensuremath{\langle}",
    "⟩": r"\ensuremath{\rangle}", "⊗": r"\ensuremath{\otimes}", "⊕": r"\ensuremath{\oplus}", "∀": r"\ensuremath{\forall}",
    "∃": r"\ensuremath{\exists}", "∅": r"\ensuremath{\emptyset}", "→": r"\ensuremath{\rightarrow}",
    "←": r"\ensuremath{\leftarrow}", "↔": r"\ensuremath{\leftrightarrow}", "⇒": r"\ensuremath{\Rightarrow}",
    "↑": r"\ensuremath{\uparrow}", "↓": r"\ensuremath{\downarrow}", "…": r"\ldots{}", "✓": r"\ensuremath{\surd}",
    "█": r"\rule{0.6em}{0.8em}", "µ": r"\ensuremath{\mu}", "²": r"\ensuremath{^{2}}", "³": r"\ensuremath{^{3}}",
    "¹": r"\ensuremath{^{1}}", "ℓ": r"\ensuremath{\ell}", "ε": r"\ensuremath{\varepsilon}",
}
_SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
_SUBSCRIPTS = "₀₁₂₃₄₅₆₇₈₉"
#: Greek capitals with their own TeX command (the others look like Latin letters).
_GREEK_CAPITALS = {"Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega"}


def latex_for(char: str) -> str | None:
    """The LaTeX that prints ``char``, or None when inputenc already handles it (or nothing is known)."""
    if char in SYMBOLS:
        return SYMBOLS[char]
    if char in _SUPERSCRIPTS:
        return rf"\ensuremath{{^{{{_SUPERSCRIPTS.index(char)}}}}}"
    if char in _SUBSCRIPTS:
        return rf"\ensuremath{{_{{{_SUBSCRIPTS.index(char)}}}}}"
    name = unicodedata.name(char, "")
    if name.startswith("GREEK SMALL LETTER ") and len(name.split()) == 4:
        letter = name.split()[-1].lower()
        if letter == "omicron":
            return "o"
        return rf"\ensuremath{{\{'varsigma' if letter == 'final' else letter}}}"
    if name.startswith("GREEK CAPITAL LETTER ") and len(name.split()) == 4:
        letter = name.split()[-1].capitalize()
        return rf"\ensuremath{{\{letter}}}" if letter in _GREEK_CAPITALS else None
    return None


def _inputenc_knows(char: str) -> bool:
    # Latin-1 Supplement, Latin Extended-A and the dashes/quotes of General Punctuation
    code = ord(char)
    return 0xA0 <= code <= 0x17F or 0x2010 <= code <= 0x2027


def unicode_preamble(texts: Iterable[str]) -> str:
    """``\\DeclareUnicodeCharacter`` lines for every non-ASCII character in ``texts`` that needs one."""
    chars = sorted({ch for text in texts for ch in text if ord(ch) > 127})
    lines, unknown = [], []
    for ch in chars:
        tex = latex_for(ch)
        if tex is None:
            if _inputenc_knows(ch):
                continue
            unknown.append(f"{ch} (U+{ord(ch):04X} {unicodedata.name(ch, '?')})")
            tex = rf"\texttt{{[U+{ord(ch):04X}]}}"
        lines.append(rf"\DeclareUnicodeCharacter{{{ord(ch):04X}}}{{{tex}}}")
    if unknown:
        warnings.warn("the PDF prints these characters as [U+XXXX] (no LaTeX form known; add one to "
                      f"v1nb.book.latex.SYMBOLS): {', '.join(unknown)}", stacklevel=2)
    return "\n".join(lines)


def prepare_stage(stage_dir: Path) -> None:
    r"""Make the staged book a thesis for pdflatex (run after the HTML build: it edits the stage).

    - Sphinx's standard LaTeX writer (``use_jupyterbook_latex: false``: Jupyter Book's own LaTeX
      extension insists on xelatex) makes every section of the root page a chapter and ignores
      the parts of ``_toc.yml``. The root page's sections are moved one level down under a single
      "Introduction" chapter, and each part's first page starts with ``\part{<caption>}``.
    - The Unicode characters of the staged sources are declared in ``latex_elements.preamble``.
    """
    marker = stage_dir / ".v1nb-latex"  # the stage is edited once, however often the PDF is built from it
    if marker.exists():
        return
    _thesis_structure(stage_dir)
    texts = [p.read_text(errors="replace") for p in stage_dir.rglob("*") if p.suffix in (".md", ".ipynb", ".bib")]
    preamble = unicode_preamble(texts)
    config_path = stage_dir / "_config.yml"
    config = yaml.safe_load(config_path.read_text()) or {}
    elements = config.setdefault("sphinx", {}).setdefault("config", {}).setdefault("latex_elements", {})
    # Sphinx names the contents after the first part's caption ("Front matter"); a thesis says Contents
    contents = r"\addto\captionsenglish{\renewcommand{\contentsname}{Contents}}"
    elements["preamble"] = "\n".join(p for p in (elements.get("preamble", ""), contents, preamble) if p)
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    marker.touch()


def _thesis_structure(stage_dir: Path) -> None:
    import nbformat

    toc = yaml.safe_load((stage_dir / "_toc.yml").read_text())
    root = _page(stage_dir, toc["root"])
    if root is not None and root.suffix == ".md":
        text = root.read_text()
        lines = text.splitlines()
        heading = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
        if heading is not None:
            body = [("#" + line) if line.startswith("#") and line.lstrip("#").startswith(" ") else line
                    for line in lines[heading + 1:]]
            root.write_text("\n".join([*lines[: heading + 1], "", "## Introduction", *body]) + "\n")
    for part in toc.get("parts", []):
        chapters = part.get("chapters") or []
        if not chapters or "caption" not in part:
            continue
        page = _page(stage_dir, chapters[0]["file"])
        raw = "```{raw} latex\n" + _part_command(part["caption"]) + "\n```\n\n"
        if page is None:
            continue
        if page.suffix == ".md":
            page.write_text(raw + page.read_text())
        else:
            nb = nbformat.read(page, as_version=4)
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(raw.strip()))
            nbformat.write(nb, page)


def _page(stage_dir: Path, entry: str) -> Path | None:
    stem = stage_dir / entry
    for suffix in (".md", ".ipynb"):
        if stem.with_suffix(suffix).is_file():
            return stem.with_suffix(suffix)
    return None


def _tex_escape(text: str) -> str:
    for char, tex in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                      ("_", r"\_"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(char, tex)
    return text


def _part_command(caption: str) -> str:
    """``Part II — The population code`` → ``\\part{The population code}`` (LaTeX numbers parts);
    an unnumbered caption (front or back matter) → an unnumbered part listed in the contents."""
    import re

    numbered = re.match(r"^Part\s+[IVXLC\d]+\s*[—–:.-]\s*(.+)$", caption)
    if numbered:
        return r"\part{" + _tex_escape(numbered.group(1)) + "}"
    title = _tex_escape(caption)
    return r"\part*{" + title + r"}\addcontentsline{toc}{part}{" + title + "}"
