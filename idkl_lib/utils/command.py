"""Running a command-line entry point by the project's convention: exit 0 on success, 2 for bad input (the
:data:`~idkl_lib.utils.errors.USER_ERRORS` and the command's own expected errors), 1 for anything else; errors are one
line (:func:`~idkl_lib.utils.errors.print_error`) unless ``--debug`` asks for the traceback."""

from __future__ import annotations

from collections.abc import Callable

from .errors import USER_ERRORS, print_error

__all__ = ["run_command"]


def run_command(
    prog: str, body: Callable[[], None], *, debug: bool = False, expected: tuple[type[BaseException], ...] = ()
) -> int:
    """Call ``body()`` and return the exit status; ``KeyboardInterrupt`` gives 130."""
    try:
        body()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", flush=True)
        return 130
    except Exception as exc:
        if debug:
            raise
        print_error(prog, exc, expected)
        return 2 if isinstance(exc, USER_ERRORS + expected) else 1
    return 0
