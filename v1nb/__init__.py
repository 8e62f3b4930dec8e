"""v1nb: reproducible analyses of mouse V1, backing the v1nb Jupyter Book.

Subpackages
-----------
data      the dataset schema, the digital twin and the real-data loaders
runner    executing chapters with papermill (used by the ``v1nb`` command line)
"""

__version__ = "0.1.0"
