"""What the reader sees of a run: parameters once, no bookkeeping output, the discussion glued
across pages, and MathJax served from the book itself (v1nb.book.staging, v1nb.book.mathjax)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from v1nb.book.build import build_book, stage
from v1nb.book.chapters import book_chapters
from v1nb.book.runner import run_chapter
from v1nb.book.staging import ANSWERS_MARKER, StagingError, answers_markdown, parameters_source, present_notebook

REPO = Path(__file__).resolve().parents[1]


def test_parameters_source_writes_used_values_and_names_changed_defaults() -> None:
    source = ('data = "twin:default"  # dataset spec\nseed = 0  # seed\nscale = 1.5\n'
              'output_dir = "."  # run folder')
    shown = parameters_source(source, {"data": "twin:quick", "seed": 0, "scale": 2.0, "output_dir": "../runs/x"},
                              {"data": "twin:default", "seed": 0, "scale": 1.5, "output_dir": "."})
    assert shown.splitlines() == [
        'data = "twin:quick"  # (default "twin:default") dataset spec',
        "seed = 0  # seed",
        "scale = 2.0  # (default 1.5)",
        'output_dir = "../runs/x"  # run folder',
    ]


def _executed(tmp_path: Path, answer: str = "## Answer\n\nIt is {glue:text}`mean`.") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# T\n\n**Question.** What is it?\n\nMore text."),
        nbformat.v4.new_code_cell('data = "twin:default"  # spec\noutput_dir = "."  # folder', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('# Parameters\ndata = "twin:quick"\noutput_dir = "r"\n', metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("x = 1\nreport.save()"),
        nbformat.v4.new_markdown_cell(answer),
        nbformat.v4.new_markdown_cell("More of the answer, {glue:text}`mean:.1f` and {doc}`other`."),
        nbformat.v4.new_code_cell("report.save()  # last"),
        nbformat.v4.new_markdown_cell("## Appendix\n\nnot part of the answer"),
    ]
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    return path


def test_present_notebook_drops_the_injected_cell_and_hides_save_output(tmp_path: Path) -> None:
    nb = nbformat.read(_executed(tmp_path), as_version=4)
    shown = present_notebook(nb, {"data": "twin:quick", "output_dir": "r"}, {"data": "twin:default", "output_dir": "."})
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in shown.cells)
    params = [c for c in shown.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0].source.startswith('data = "twin:quick"  # (default "twin:default") spec')
    tags = [c.metadata.get("tags", []) for c in shown.cells if c.cell_type == "code"]
    assert "remove-output" in tags[1]  # save() beside other code: keep the code, hide its output
    assert "remove-cell" in tags[2]  # only save(): the whole cell goes
    assert len(nb.cells) == 8 and "injected-parameters" in nb.cells[2].metadata["tags"]  # input untouched


def test_present_notebook_drops_the_echo_of_a_final_report_value(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    echo = nbformat.v4.new_output("execute_result", data={"text/plain": "60"}, execution_count=1)
    shown_table = nbformat.v4.new_output("execute_result", data={"text/plain": "table"}, execution_count=2)
    nb.cells = [nbformat.v4.new_code_cell('x = 1\nreport.value("n", 60)', outputs=[echo]),
                nbformat.v4.new_code_cell('report.value("n", 60)\ntable', outputs=[shown_table])]
    shown = present_notebook(nb, {}, {})
    assert shown.cells[0].outputs == [] and shown.cells[1].outputs[0]["data"]["text/plain"] == "table"


def test_answers_markdown_glues_the_chapter_answer_across_pages(tmp_path: Path) -> None:
    chapter = type("C", (), {"title": "T", "name": "t"})()
    run = {"notebook": _executed(tmp_path), "parameters": {"data": "twin:quick", "seed": 3}, "values": {"mean": 0.5}}
    text = answers_markdown([(chapter, Path("book/part/t.ipynb"), run)])
    assert "### T" in text and "data `twin:quick`, seed 3" in text
    assert "**Question.** What is it?" in text and "More text" not in text
    assert "It is {glue:text}`/book/part/t.ipynb::mean:s`." in text  # a format spec is required after doc::key
    assert "{glue:text}`/book/part/t.ipynb::mean:.1f`" in text
    assert "{doc}`/book/part/other`" in text
    assert "Appendix" not in text and "report.save" not in text


def test_answers_markdown_refuses_missing_answers_and_unrecorded_numbers(tmp_path: Path) -> None:
    chapter = type("C", (), {"title": "T", "name": "t"})()
    run = {"notebook": _executed(tmp_path), "parameters": {}, "values": {}}
    with pytest.raises(StagingError, match=r"glues mean, which the chapter did not record"):
        answers_markdown([(chapter, Path("book/part/t.ipynb"), run)])
    run = {"notebook": _executed(tmp_path, answer="## Results\n\nno answer"), "parameters": {}, "values": {"mean": 1}}
    with pytest.raises(StagingError, match=r"book/part/t.ipynb: no '## Answer' section"):
        answers_markdown([(chapter, Path("book/part/t.ipynb"), run)])


def test_rendered_book_shows_parameters_once_glues_the_discussion_and_ships_mathjax(book: Path) -> None:
    (book / "book" / "discussion.md").write_text(
        f"# Discussion\n\nInline math $\\hat y = 1$.\n\n## Answers\n\n{ANSWERS_MARKER}\n")
    toc = book / "_toc.yml"
    toc.write_text(toc.read_text().replace("      - file: book/reproducibility",
                                           "      - file: book/discussion\n      - file: book/reproducibility"))
    result = build_book(book, "quick", progress=False, quiet=True)
    mean = json.loads((result.runs[0].folder / "results.json").read_text())["values"]["mean"]

    page = (result.html / "book" / "part" / "tiny.html").read_text()
    shown = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))
    assert shown.count("output_dir =") == 1  # the parameters cell once (papermill's copy removed)
    assert 'data = "twin:quick" # (default "twin:default") dataset spec' in shown.replace("&quot;", '"')
    assert "recorded in results.json" not in page  # report.save()'s output stays out of the Answer

    discussion = (result.html / "book" / "discussion.html").read_text()
    text = re.sub(r"<[^>]+>", "", discussion)
    assert f"The mean of the draws is {mean:.3f} on data twin:quick." in re.sub(r"\s+", " ", text)
    assert "data twin:quick, seed 0" in re.sub(r"\s+", " ", text)

    # MathJax from the book's own _static folder, not a CDN
    assert re.search(r'<script[^>]+src="\.\./_static/mathjax/tex-mml-chtml\.js', discussion)
    assert (result.html / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert "cdn.jsdelivr" not in discussion and "cdn.jsdelivr" not in page


def test_stage_needs_an_answer_in_every_chapter_for_the_discussion(book: Path) -> None:
    chapter = book_chapters(book)[0]
    run = run_chapter(chapter, {"data": "twin:quick"}, root=book)
    (book / "book" / "discussion.md").write_text(f"# Discussion\n\n{ANSWERS_MARKER}\n")
    executed = nbformat.read(run.notebook, as_version=4)
    for cell in executed.cells:
        cell.source = cell.source.replace("## Answer", "## Result")
    nbformat.write(executed, run.notebook)
    with pytest.raises(StagingError, match="no '## Answer' section"):
        stage(book, [chapter], [run])


def test_the_book_cites_no_file_its_readers_do_not_have() -> None:
    pages = [*REPO.glob("book/**/*.md"), *REPO.glob("book/**/*.ipynb")]
    offenders = [str(p.relative_to(REPO)) for p in pages if "methods.md" in p.read_text()]
    assert not offenders, f"pages citing methods.md (put the formula in book/notation.md): {offenders}"


def test_no_glue_role_inside_inline_code() -> None:
    # `{glue:text}`name`` renders as raw text: the role is inside a code span (seen in the models chapter)
    pages = [*REPO.glob("book/**/*.md"), *REPO.glob("book/**/*.ipynb")]
    for page in pages:
        sources = ([page.read_text()] if page.suffix == ".md" else
                   [c.source for c in nbformat.read(page, as_version=4).cells if c.cell_type == "markdown"])
        for text in sources:
            assert not re.search(r"(?<!`)`\{glue", text), f"{page.relative_to(REPO)}: a glue role inside backticks"


def test_answer_skips_the_code_cell_that_computes_it():
    """'## Answer', then the code computing the verdict, then its glued text: the text is the answer."""
    import nbformat

    from v1nb.book.staging import _answer

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("Text.\n\n## Answer"),
        nbformat.v4.new_code_cell('report.value("answer", "yes")'),
        nbformat.v4.new_markdown_cell("{glue:text}`answer`"),
        nbformat.v4.new_code_cell("report.save()"),
    ])
    assert _answer(nb, "x") == "{glue:text}`answer`"
