"""Errors as the command lines print them: one line that names the thing and the fix (``--debug`` for a traceback).

Every command of the package (``train``, ``pipeline``, ``experiments.sweep``, ``experiments.compare``,
``experiments.term_analysis``, ...) follows one convention, built here:

* bad input (an unknown or misspelt option, a missing folder, a malformed value) is one line on stderr naming it,
  exit status 2; a misspelt option gets the closest real one (``--learning-rate: did you mean --lr?``);
* a step or cell that failed is exit status 1;
* ``--debug`` shows the traceback instead of the one line.

    parser = CommandParser(prog="python -m idkl_lib.experiments.compare", description=...)
    ...
    return run_command(parser, body, argv)   # body(args) -> exit status

In a notebook the same refusals (:class:`ShortMessage` errors: a run folder that holds another run, data that is not
the run's, a bad parameter) arrive as their message, a few lines, instead of IPython's traceback; the cell still fails,
so papermill and the pipeline still see the error (its name and message are in the output).
"""

from __future__ import annotations

import argparse
import difflib
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

__all__ = [
    "USER_ERRORS",
    "CommandParser",
    "OneLineArgumentParser",
    "ShortMessage",
    "one_line",
    "print_error",
    "run_body",
    "run_command",
]

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


class ShortMessage(Exception):
    """An error whose message says all a user needs: IPython shows it as the error's name and its message, wrapped to
    :attr:`WIDTH` columns, instead of a traceback through the library (``%xmode`` and ``%tb`` still give the full
    one). Subclasses are refusals and bad input that name the thing and the fix.

    IPython's protocol: an exception with ``_render_traceback_()`` is displayed as the lines it returns; the cell
    fails as before and the kernel's error reply keeps ``ename`` and ``evalue``.
    """

    WIDTH = 110

    def _render_traceback_(self) -> list[str]:
        """The lines IPython shows for this error: ``Name: message``, wrapped (ANSI red name, as IPython's own)."""
        text = " ".join(str(self).split())
        lines = textwrap.wrap(f"{type(self).__name__}: {text}", self.WIDTH, break_on_hyphens=False) or [text]
        name = type(self).__name__
        lines[0] = f"\x1b[0;31m{name}\x1b[0m" + lines[0][len(name) :]
        return lines


class OneLineArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``prog: error: message (--help lists the options)``), not the
    usage block, exit code 2; an unknown option is answered with the closest real one."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """Unknown options are named (with the closest real one) before argparse complains of a missing one."""
        argv = sys.argv[1:] if args is None else list(args)
        options = {opt for action in self._actions for opt in action.option_strings}
        for arg in argv:
            if arg == "--":
                break
            name = arg.split("=", 1)[0]
            if name.startswith("--") and name not in options and not any(opt.startswith(name) for opt in options):
                self.error(self._suggest([name]))
        return super().parse_args(argv, namespace)

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        if text.startswith("unrecognized arguments:"):
            text = self._suggest(text.split(":", 1)[1].split()) or text
        self.exit(2, f"{self.prog}: error: {text} ({self.prog} --help lists the options)\n")

    def _suggest(self, unknown: Sequence[str]) -> str:
        """``--learning-rate: did you mean --lr?`` for the first unknown option, or "" when it is no option."""
        options = [opt for action in self._actions for opt in action.option_strings if opt.startswith("--")]
        for arg in unknown:
            if not arg.startswith("-"):
                continue
            name = arg.split("=", 1)[0]
            words = [word for word in name.lstrip("-").replace("_", "-").split("-") if word]
            initials = "--" + "".join(word[0] for word in words)  # "--learning-rate" -> "--lr"
            close = [initials] if len(words) > 1 and initials in options else []
            close = close or difflib.get_close_matches(name, options, n=1, cutoff=0.6)
            if close:
                return f"unknown option {name}: did you mean {close[0]}?"
            return f"unknown option {name}"
        return ""


CommandParser = OneLineArgumentParser
"""The parser of every command (one-line errors, exit 2, closest-option advice); add ``--debug`` with
:func:`run_command`."""


def print_error(prog: str, exc: BaseException, expected: tuple[type[BaseException], ...] = ()) -> None:
    """Print ``prog: error: <one line>`` to stderr."""
    print(f"{prog}: error: {one_line(exc, expected)}", file=sys.stderr)


def run_body(
    prog: str,
    body: Callable[[], int | None],
    *,
    debug: bool = False,
    bad_input: tuple[type[BaseException], ...] = (),
    failures: tuple[type[BaseException], ...] = (),
) -> int:
    """Call ``body()`` and return the exit status: its own (None: 0); an error is one line on stderr, exit 2 for bad
    input (:data:`USER_ERRORS` and ``bad_input``), 1 for anything else (``failures`` print their message alone,
    without the type name); ``KeyboardInterrupt`` gives 130. With ``debug`` the error is raised (the traceback)."""
    try:
        return body() or 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print_error(prog, exc, bad_input + failures)
        return 2 if isinstance(exc, USER_ERRORS + bad_input) else 1


def run_command(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
    *,
    bad_input: tuple[type[BaseException], ...] = (),
    failures: tuple[type[BaseException], ...] = (),
) -> int:
    """Parse ``argv`` (``--debug`` is added to ``parser``) and :func:`run_body` ``body(args)``."""
    if not any("--debug" in action.option_strings for action in parser._actions):
        parser.add_argument("--debug", action="store_true", help="show the traceback of an error (else one line)")
    args = parser.parse_args(argv)
    return run_body(parser.prog, lambda: body(args), debug=args.debug, bad_input=bad_input, failures=failures)
