"""The executor `cra serve` runs in `benches/http_load.py --operation execute`
(`CRA_EXECUTORS=http_executors:EXECUTORS`, with benches/ on PYTHONPATH):
`ticket.lookup` of the bundled example atlas, answering at once, so that the
bench measures the server and its store rather than the executor."""

from __future__ import annotations

from typing import Any, Callable, Dict


def ticket_lookup(ticket_id: str) -> Dict[str, Any]:
    return {"ticket_id": ticket_id, "status": "open"}


EXECUTORS: Dict[str, Callable[..., Any]] = {"ticket.lookup": ticket_lookup}
