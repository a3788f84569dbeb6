"""The `cra` command line: `main()` runs it, `build_parser()` describes it.

One module per command group (`trace`, `carp` for `atlas` and `resolve`,
`demo`, `conformance`, `serve`), the parser and dispatch in `parser`, the
exit statuses in `exits`.
"""

from .parser import build_parser, main

__all__ = ["build_parser", "main"]
