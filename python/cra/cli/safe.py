"""Terminal-safe output: every line a `cra` command prints goes through here.

A trace (or an atlas, a store, a file name) is untrusted text. Printed raw,
an ANSI escape in a session's goal could clear the screen and write a forged
verdict, a carriage return could overwrite a line, and a bidi override could
reverse what follows it. So each command builds its lines from parts, and
`out` / `err` print every part through `escape`, which shows such characters
as visible escapes; only the command's own `Raw` parts (its colours, the
`\\r` of a progress display) go out as they are. `out_json` prints JSON with
every character outside printable ASCII escaped, and `out_json_text` a JSON
text read from a store, escaped the same way without changing its value.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Dict, TextIO

__all__ = ["Raw", "err", "escape", "json_text", "out", "out_json", "out_json_text"]

#: Characters never printed raw, as ranges of code points: C0 controls,
#: DEL and C1 controls; the bidi formatting characters (ALM; LRM, RLM; LRE,
#: RLE, PDF, LRO, RLO with the line and paragraph separators before them;
#: LRI, RLI, FSI, PDI); lone surrogates, which a JSON string may hold and
#: UTF-8 cannot encode.
_UNSAFE_RANGES = (
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0x061C, 0x061C),
    (0x200E, 0x200F),
    (0x2028, 0x202E),
    (0x2066, 0x2069),
    (0xD800, 0xDFFF),
)
_UNSAFE = [c for first, last in _UNSAFE_RANGES for c in range(first, last + 1)]
_FOUND = re.compile(
    "[" + "".join(f"\\u{first:04x}-\\u{last:04x}" for first, last in _UNSAFE_RANGES) + "]"
)
_SHORT = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_VISIBLE: Dict[int, str] = {
    c: _SHORT.get(c) or (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNSAFE
}
#: In a JSON text a tab, line feed or carriage return may only be whitespace
#: between tokens (a space means the same); any other such character may
#: only be inside a string, where its `\\uXXXX` escape means the same.
_JSON_ESCAPES: Dict[int, str] = {c: f"\\u{c:04x}" for c in _UNSAFE}
_JSON_ESCAPES.update({0x09: " ", 0x0A: " ", 0x0D: " "})


class Raw(str):
    """A part of a line printed as it is: only the command's own control
    sequences (colours, a progress display's carriage return), never text
    read from a file."""


def escape(text: object) -> str:
    """`text` with every control character (C0, DEL, C1), bidi formatting
    character, line or paragraph separator and lone surrogate shown as a
    visible escape: `\\x1b`, `\\r`, `\\u202e`. Everything else, backslashes
    included, is left as it is."""
    s = str(text)
    return s.translate(_VISIBLE) if _FOUND.search(s) else s


def json_text(text: str) -> str:
    """A JSON text with those characters escaped and the same JSON value:
    `\\uXXXX` inside strings, a space for a tab, line feed or carriage
    return between tokens. (Text that is not JSON comes out terminal-safe,
    and on one line, too.)"""
    return text.translate(_JSON_ESCAPES) if _FOUND.search(text) else text


def _write(stream: TextIO, parts: tuple[object, ...], end: str) -> None:
    stream.write("".join(p if isinstance(p, Raw) else escape(p) for p in parts) + end)


def out(*parts: object, end: str = "\n") -> None:
    """Prints one line made of `parts` on standard output, each escaped unless `Raw`."""
    _write(sys.stdout, parts, end)


def err(*parts: object, end: str = "\n") -> None:
    """Prints one line made of `parts` on standard error, each escaped unless `Raw`."""
    _write(sys.stderr, parts, end)


def out_json(value: Any, *, to_stderr: bool = False) -> None:
    """Prints `value` as indented JSON, every character outside printable
    ASCII escaped (`ensure_ascii`), so no control character reaches the terminal."""
    stream = sys.stderr if to_stderr else sys.stdout
    stream.write(json.dumps(value, indent=2, ensure_ascii=True) + "\n")


def out_json_text(text: str) -> None:
    """Prints one JSON text (a stored event) as one line, through `json_text`."""
    sys.stdout.write(json_text(text) + "\n")
