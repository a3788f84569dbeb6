"""The example support desk of `cra demo`: its atlas, tickets and executors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from .runtime import Runtime

__all__ = ["AGENT", "EXAMPLE_ATLAS", "TICKETS", "register_executors"]

#: The atlas shipped in the package (`cra/examples/support`).
EXAMPLE_ATLAS = Path(__file__).parent / "examples" / "support"
AGENT = "support-bot"

# A tiny in-memory "help desk" the executors act on.
TICKETS: Dict[str, Dict[str, Any]] = {
    "T-1042": {
        "ticket_id": "T-1042",
        "customer": "ada@example.com",
        "status": "open",
        "order": "O-77",
    },
}


def register_executors(rt: Runtime) -> None:
    """Registers an executor for each action of the example atlas."""
    rt.register_executor("ticket.lookup", lambda ticket_id: dict(TICKETS[ticket_id]))
    rt.register_executor("customer.lookup", lambda email: {"email": email, "tier": "gold"})

    @rt.action("ticket.reply")
    def reply(ticket_id: str, body: str) -> Dict[str, Any]:
        return {"ticket_id": ticket_id, "sent": True, "chars": len(body)}

    @rt.action("ticket.update")
    def update(ticket_id: str, status: str) -> Dict[str, Any]:
        TICKETS[ticket_id]["status"] = status
        return dict(TICKETS[ticket_id])

    @rt.action("refund.issue")
    def refund(order_id: str, amount: float) -> Dict[str, Any]:
        return {"order_id": order_id, "refunded": amount, "currency": "EUR"}
