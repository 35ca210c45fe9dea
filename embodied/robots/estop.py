"""The emergency stop: Ctrl-C (SIGINT), a key on a terminal, or a stop file.

    with EStop(stop_file="/tmp/STOP") as estop:     # installs the handlers, restores them after
        while not estop.poll(): ...                  # poll() -> the reason, or None

A first Ctrl-C asks the control loop to stop safely (it holds position and keeps the episode);
a second one raises KeyboardInterrupt as usual. Keys are read only where stdin is a terminal (it
is put in cbreak mode for the episode, so a single key press counts). A stop file is latched: an
episode does not start while it exists.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from pathlib import Path

STOP_KEYS = {" ": "space", "q": "q", "\x1b": "Esc"}


class EStop:
    def __init__(self, stop_file: str | os.PathLike | None = None, keys: bool = True, stdin=None):
        self.stop_file = Path(stop_file) if stop_file else None
        self.stdin = sys.stdin if stdin is None else stdin
        self.keys = bool(keys) and _is_tty(self.stdin)
        self.reason: str | None = None
        self._old_sigint = None
        self._old_tty = None

    def check_clear(self) -> None:
        """Raise RuntimeError if the stop file exists (the e-stop is latched)."""
        if self.stop_file is not None and self.stop_file.exists():
            raise RuntimeError(f"e-stop file {self.stop_file} exists: remove it to start (it stops any episode)")

    def trigger(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def poll(self) -> str | None:
        """The reason to stop, or None; checks the stop file and pending key presses."""
        if self.reason is None and self.stop_file is not None and self.stop_file.exists():
            self.trigger(f"stop file {self.stop_file}")
        if self.reason is None and self.keys:
            while select.select([self.stdin], [], [], 0)[0]:
                key = self.stdin.read(1)
                if key in STOP_KEYS:
                    self.trigger(f"key {STOP_KEYS[key]}")
                    break
                if not key:
                    break
        return self.reason

    # --- handlers, for the duration of an episode --------------------------------------------------------
    def _on_sigint(self, signum, frame) -> None:
        if self.reason == "Ctrl-C":  # the second one: the operator means it
            raise KeyboardInterrupt
        self.trigger("Ctrl-C")

    def __enter__(self) -> EStop:
        self.reason = None
        if threading.current_thread() is threading.main_thread():  # signals go to the main thread only
            self._old_sigint = signal.signal(signal.SIGINT, self._on_sigint)
        if self.keys:
            import termios
            import tty

            fd = self.stdin.fileno()
            self._old_tty = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        return self

    def __exit__(self, *exc) -> None:
        if self._old_sigint is not None:
            signal.signal(signal.SIGINT, self._old_sigint)
            self._old_sigint = None
        if self._old_tty is not None:
            import termios

            termios.tcsetattr(self.stdin.fileno(), termios.TCSADRAIN, self._old_tty)
            self._old_tty = None


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
