"""Compatibility alias: :class:`Report` lives in :mod:`v1nb.book.report`.

Kept so that notebooks written against ``from v1nb.report import Report`` keep working.
"""

from v1nb.book.report import Report

__all__ = ["Report"]
