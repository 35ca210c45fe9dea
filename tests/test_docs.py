"""The project speaks of itself: no words about who worked on it or when, in any tracked text file."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# "stop 16", "sessions 3", "the next session", "whoever takes the issue": work-log words, not the project's.
MARKERS = re.compile(r"\b(stop|session)s? [0-9]+\b|next session|whoever takes", re.IGNORECASE)


def test_no_work_log_markers_in_tracked_files():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    hits = []
    for name in files:
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".sh", ""} or not path.is_file():
            continue
        for n, line in enumerate(path.read_text(errors="ignore").splitlines(), 1):
            if MARKERS.search(line) and name != "tests/test_docs.py":
                hits.append(f"{name}:{n}: {line.strip()}")
    assert not hits, "work-log words in the project:\n" + "\n".join(hits[:20])


def test_the_marker_pattern_catches_what_it_should():
    assert MARKERS.search("figures marked (stop 16)") and MARKERS.search("for the next session")
    assert not MARKERS.search("stop_on_success: stops the episode") and not MARKERS.search("a stopped run")
