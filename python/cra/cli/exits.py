"""The exit statuses of every `cra` command, each defined once here."""

from __future__ import annotations

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_DIFFERENT",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_UNREADABLE",
    "EXIT_USAGE",
]

#: The command did what was asked, and every check passed.
EXIT_OK = 0
#: A check failed: a trace or atlas is invalid, a request was refused, a
#: conformance case failed, the demo's trace did not verify.
EXIT_INVALID = 1
#: `trace replay` and `trace diff`: the traces differ (the status of a failed check).
EXIT_DIFFERENT = EXIT_INVALID
#: An input could not be read (a missing file, bad JSON, a store without the
#: session), or a trace line is not an event (`trace show|diff|replay` name
#: it by file and line; `trace verify` reports it as a failed check, 1).
EXIT_UNREADABLE = 2
#: The command line or the configuration is wrong (argparse uses 2 as well).
EXIT_USAGE = EXIT_UNREADABLE
#: Interrupted by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130
#: The reader of standard output went away (`cra trace show FILE | head`):
#: the command stops quietly, with the status a shell shows for a command
#: killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141
