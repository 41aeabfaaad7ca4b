"""The ``pdf2dcm`` command line: thin commands over the library, one exit-code table.

This package is the only place that imports click or rich; rich, pydicom and requests are
imported inside the commands that need them, so ``pdf2dcm --version`` and ``--help`` start
fast. Results go to stdout; progress, warnings and errors to stderr.
"""

# The command modules are imported when their command is asked for (see app._COMMAND_MODULES).
from .app import EXIT_CODES, ExitStatus, cli, exit_status_for, main

__all__ = ["EXIT_CODES", "ExitStatus", "cli", "exit_status_for", "main"]
