"""The book machinery: chapters, running them, reporting their numbers, building the book.

Modules
-------
chapters   the table of contents (``_toc.yml``) and each chapter's ``parameters`` cell
runner     executing one chapter with papermill into a cached, atomic run folder
report     :class:`~v1nb.book.report.Report`, what a chapter records (values, figures)
build      executing every chapter and rendering the book with Jupyter Book
cli        the ``v1nb`` command line

Nothing is imported here, so ``from v1nb.book.report import Report`` in a chapter's kernel does
not pull in papermill or Jupyter Book.
"""
