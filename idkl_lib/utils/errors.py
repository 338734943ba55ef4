"""Errors as the command lines print them: one line that names the thing and the fix (``--debug`` for a traceback)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

__all__ = ["USER_ERRORS", "OneLineArgumentParser", "one_line", "print_error"]

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError)
"""Errors caused by the input (files, folders, options, locks: ``FolderLockTimeout`` is an ``OSError``)."""


def one_line(exc: BaseException, expected: tuple[type[BaseException], ...] = ()) -> str:
    """``exc`` as one line: its message with whitespace collapsed; other than for :data:`USER_ERRORS` and the
    ``expected`` types (whose messages say what to do), the type is named and ``--debug`` offered for the
    traceback."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, USER_ERRORS + expected):
        return text
    return f"{type(exc).__name__}: {text} (--debug shows the traceback)"


class OneLineArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``prog: error: message (--help lists the options)``), not the
    usage block, exit code 2."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} ({self.prog} --help lists the options)\n")


def print_error(prog: str, exc: BaseException, expected: tuple[type[BaseException], ...] = ()) -> None:
    """Print ``prog: error: <one line>`` to stderr."""
    print(f"{prog}: error: {one_line(exc, expected)}", file=sys.stderr)
