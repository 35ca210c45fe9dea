"""The project speaks of itself: no words about who worked on it or when, in any tracked text file."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A work-log word ("stop" or its synonym followed by a number, "next" + that synonym, "whoever"
# + "takes the issue") says who worked on the project and when, not what it is. The pattern spells the words
# with character classes so that this file does not match itself.
MARKERS = re.compile(r"\b(st[o]p|s[e]ssion)s? [0-9]+\b|next s[e]ssion|whoever t[a]kes", re.IGNORECASE)


def test_no_work_log_markers_in_tracked_files():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    hits = []
    for name in files:
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".sh", ""} or not path.is_file():
            continue
        for n, line in enumerate(path.read_text(errors="ignore").splitlines(), 1):
            if MARKERS.search(line):
                hits.append(f"{name}:{n}: {line.strip()}")
    assert not hits, "work-log words in the project:\n" + "\n".join(hits[:20])


def test_the_marker_pattern_catches_what_it_should():
    stop, nxt = "st" + "op", "next ses" + "sion"
    assert MARKERS.search(f"figures marked ({stop} 16)") and MARKERS.search(f"for the {nxt}")
    assert not MARKERS.search("stop_on_success: stops the episode") and not MARKERS.search("a stopped run")
