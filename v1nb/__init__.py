"""v1nb: reproducible analyses of mouse V1, backing the v1nb Jupyter Book.

Subpackages
-----------
data      the dataset schema, the digital twin and the real-data loaders
book      the book machinery: chapters, runner, report, build and the ``v1nb`` command line
"""

__version__ = "0.1.0"

from v1nb.machine import follow_niceness as _follow_niceness

# a chapter run beside a parallel build's longest one is niced (v1nb.book.executor); its kernel
# applies that here, on its first import of v1nb, to itself and its scheduler autogroup
_follow_niceness()
