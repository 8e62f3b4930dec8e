"""Interaction stages between readout and output nonlinearity (Part V of the book).

Each stage is one module of this package and one registry line
(``@INTERACTIONS.register(name, extra_settings=...)`` from :mod:`v1nb.models.registry`); a stage
maps the readout's drive ``(B, N)`` and a :class:`~v1nb.models.context.Context` to ``(B, N)``.
"""
