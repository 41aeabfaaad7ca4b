"""``python -m pdf2dcm``: the same command line as the ``pdf2dcm`` script."""

from .cli import main

main()
