"""The quick book as a reader gets it: in headless Chromium, and as a PDF (slow).

The book is built once per module (the whole quick profile: a few minutes on 2 cores), into a
temporary copy of the repository's book; set ``V1NB_QUICK_BOOK`` to a book root that already holds
a strict quick build (``_build/html`` and ``_build/stage``, e.g. the repository after
``make book-quick``, as CI does) to test that build instead.

Chromium runs as the Debian package (``chromium``; skipped when absent), offline, with a small
script appended to a copy of each page: once the page has loaded, and MathJax has typeset, it
writes what it finds (images and their natural widths, typeset formulas, navigation links, error
outputs) into the DOM as JSON, which ``--dump-dom`` returns.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from v1nb.book.build import build_book, render
from v1nb.book.chapters import book_chapters, toc_files

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
#: Chromium offline and quiet: no sandbox (root in CI), no GPU, no background connections.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
#: tqdm's bar ("training:  42%|████      | 21/50") and its notebook-mode warning.
PROGRESS_BAR = re.compile(r"\d{1,3}%\|[^|\n]*\|")
TQDM_NOISE = ("TqdmWarning", "IProgress not found", "application/vnd.jupyter.widget-view+json")

CHECK_SCRIPT = """
<script>
window.addEventListener("load", function () {
  function report() {
    var out = {
      images: Array.from(document.images).map(function (im) {
        return {src: im.getAttribute("src"), complete: im.complete, width: im.naturalWidth};
      }),
      math: document.querySelectorAll("span.math, div.math").length,
      typeset: document.querySelectorAll("span.math mjx-container, div.math mjx-container").length,
      nav: Array.from(document.querySelectorAll(".bd-sidebar-primary a")).map(function (a) { return a.href; }),
      tracebacks: document.querySelectorAll(".output.traceback, .cell_output .traceback").length,
      text: document.body.innerText
    };
    var pre = document.createElement("pre");
    pre.id = "v1nb-check";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(report, report);
  } else {
    report();
  }
});
</script>
"""


@pytest.fixture(scope="module")
def quick_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("V1NB_QUICK_BOOK")
    if given:
        root = Path(given).resolve()
        if not (root / "_build" / "html" / "index.html").is_file():
            pytest.fail(f"V1NB_QUICK_BOOK={given}: no _build/html/index.html there (run `make book-quick` first)")
        return root
    root = tmp_path_factory.mktemp("quick") / "book_root"
    root.mkdir()
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "book", root / "book", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    build_book(root, "quick", progress=False, quiet=True)
    return root


def _pages(root: Path) -> list[Path]:
    """The rendered page of every _toc.yml entry, in reading order."""
    return [root / "_build" / "html" / (Path(entry).with_suffix("").as_posix() + ".html") for entry in toc_files(root)]


def test_pages_carry_no_progress_bars_tqdm_warnings_or_errors(quick_book: Path) -> None:
    stage = quick_book / "_build" / "stage"
    for chapter in book_chapters(quick_book):
        path = stage / chapter.path.resolve().relative_to(quick_book.resolve())
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for output in cell.get("outputs", []):
                where = f"{path.name} cell {index}"
                assert output["output_type"] != "error", f"{where}: error output {output.get('ename')}"
                text = output.get("text", "") + json.dumps(output.get("data", {}))
                assert not PROGRESS_BAR.search(text), f"{where}: a progress bar in the output: {text[:200]!r}"
                for noise in TQDM_NOISE:
                    assert noise not in text, f"{where}: {noise!r} in the output"
                if output["output_type"] == "stream" and output.get("name") == "stderr":
                    # a library's warning, with its file path, is noise in the prose: handle it in the package
                    assert not re.search(r"\b\w*Warning: ", text), f"{where}: a warning in the output: {text[:300]!r}"
    for page in _pages(quick_book):
        html = page.read_text()
        assert not PROGRESS_BAR.search(html) and "TqdmWarning" not in html, page.name
        assert "{glue" not in html and ".ipynb::" not in html, f"{page.name}: unresolved glue"


def _check_in_chromium(page: Path, tmp: Path) -> dict:
    probe = page.with_name(page.stem + ".v1nb-check.html")  # beside the page, so relative links resolve
    # a fresh profile per page: a second Chromium on a profile still in use hands its URL over and exits
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    probe.write_text(page.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    try:
        done = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
             "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        probe.unlink()
    found = re.search(r'<pre id="v1nb-check"[^>]*>(.*?)</pre>', done.stdout, re.DOTALL)  # the theme adds tabindex
    assert found, f"{page.name}: Chromium did not finish the page (exit {done.returncode}): {done.stdout[-300:]} {done.stderr[-300:]}"
    import html as html_lib

    return json.loads(html_lib.unescape(found.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_every_page_loads_in_chromium_with_images_math_and_navigation(quick_book: Path, tmp_path: Path) -> None:
    pages = _pages(quick_book)
    expected_nav = {p.resolve().as_uri() for p in pages[1:]}  # the root page is the book's title link
    math_pages = images = 0
    for page in pages:
        assert page.is_file(), f"_toc.yml lists a page that was not rendered: {page}"
        seen = _check_in_chromium(page, tmp_path)
        broken = [im["src"] for im in seen["images"] if not im["complete"] or im["width"] == 0]
        assert not broken, f"{page.name}: images that did not load: {broken}"
        assert seen["tracebacks"] == 0, f"{page.name}: {seen['tracebacks']} error output(s)"
        assert "{glue" not in seen["text"] and ".ipynb::" not in seen["text"], f"{page.name}: unresolved glue"
        assert seen["typeset"] == seen["math"], f"{page.name}: {seen['math'] - seen['typeset']} formula(s) not typeset"
        math_pages += seen["math"] > 0
        images += len(seen["images"])
        nav = {href.split("#")[0].replace(".v1nb-check.html", ".html") for href in seen["nav"]}  # the probe is this page
        assert expected_nav <= nav, f"{page.name}: navigation lacks {sorted(expected_nav - nav)}"
    assert math_pages >= 1  # the notation page at least: MathJax ran offline
    assert images >= len(book_chapters(quick_book))  # the chapters' figures were there to check


@pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("latexmk") is None
                    or shutil.which("pdftotext") is None,
                    reason="needs pdflatex, latexmk and pdftotext (latexmk texlive-latex-extra "
                           "texlive-fonts-recommended tex-gyre poppler-utils)")
def test_pdf_has_every_chapter_figures_glued_numbers_and_bibliography(quick_book: Path) -> None:
    pdf = render(quick_book / "_build" / "stage", quick_book / "_build", quiet=True, builder="pdflatex")
    assert pdf.suffix == ".pdf" and pdf.stat().st_size > 0
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))
    chapters = book_chapters(quick_book)
    assert pages >= 2 * len(toc_files(quick_book)), f"only {pages} pages"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    # LaTeX typesets ' as a right single quotation mark: compare titles with plain apostrophes
    flat = re.sub(r"\s+", " ", text).replace("\u2019", "'")
    assert "{glue" not in flat and ".ipynb::" not in flat, "unresolved glue in the PDF"
    assert "[U+" not in flat, "a character pdflatex could not print"
    for chapter in chapters:
        assert re.sub(r"\s+", " ", chapter.title).upper() in flat.upper(), f"chapter {chapter.title!r} missing"
    # a glued sentence of the data chapter, with the numbers of its run
    runs = [json.loads(p.read_text()) for p in sorted((quick_book / "runs" / "data").glob("*/results.json"),
                                                       key=lambda p: p.stat().st_mtime)]
    values = [r for r in runs if r["parameters"].get("data") == "twin:quick"][-1]["values"]
    assert f"The dataset has {values['n_neurons']} neurons, {values['n_trials']} trials" in flat
    assert "BIBLIOGRAPHY" in flat.upper() and "Stringer" in flat
    if shutil.which("pdfimages"):
        listing = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
        assert len(listing.splitlines()) - 2 >= len(chapters), "fewer images than chapters in the PDF"
