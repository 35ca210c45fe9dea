"""A user's mistake reaches the terminal as one line; a bug keeps its traceback.

Every CLI's entry function is wrapped in ``user_errors``: an error of the kinds the project raises
for bad input (a bad value, a missing checkpoint or store, a foreign or locked store), raised by
the project's own code, is printed as ``<command>: <message>`` and the command exits with status 2.
Anything else (a TypeError, an error from inside torch or numpy) propagates with its traceback, and
``HYDRA_FULL_ERROR=1`` shows the traceback of a user error too.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Callable

from embodied.store.schema import StoreFormatError, StoreLockedError

USER_ERROR_TYPES: tuple[type[BaseException], ...] = (
    ValueError, KeyError, FileNotFoundError, NotADirectoryError, StoreFormatError, StoreLockedError)
# The project's packages: an error raised from their code was raised on purpose, with a message.
_PROJECT_DIRS = tuple(str(Path(__file__).resolve().parents[1] / name) + os.sep
                      for name in ("embodied", "sim", "policies", "video_models"))
EXIT_USER_ERROR = 2


def raised_by_project(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is in the project's own code."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(_PROJECT_DIRS)


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, USER_ERROR_TYPES) and raised_by_project(exc)


def message(exc: BaseException) -> str:
    # KeyError's str() is the repr of its argument; the sentence is the argument itself.
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def user_errors(command: str) -> Callable[[Callable], Callable]:
    """Wrap a CLI's entry function: a user error -> ``command: message`` on stderr, exit status 2."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except USER_ERROR_TYPES as exc:
                if os.environ.get("HYDRA_FULL_ERROR") == "1" or not is_user_error(exc):
                    raise
                print(f"{command}: {message(exc)}\n(HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
                sys.exit(EXIT_USER_ERROR)

        return run

    return wrap
