"""v1nb: reproducible analyses of mouse V1, backing the v1nb Jupyter Book.

Subpackages
-----------
data      the dataset schema, the digital twin and the real-data loaders
book      the book machinery: chapters, runner, report, build and the ``v1nb`` command line
"""

__version__ = "0.1.0"
