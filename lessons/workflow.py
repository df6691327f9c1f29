"""The lesson status machine (docs/ARCHITECTURE.md, section 3), as data.

Each target status is reached by exactly one transition, so a move is named by its
target (``{"to": "validated"}`` in the API, a button on the lesson page).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lessons.rules import STATUSES

Actor = Literal["author", "analyst"]
Need = Literal["required_fields", "comment", "reason", "evidence", "open_action"] | None


@dataclass(frozen=True)
class Transition:
    to: str
    sources: frozenset[str]
    actor: Actor
    needs: Need
    audit_action: str  # the verb recorded in the audit trail
    label: str  # the button a user presses
    # A review decision: never taken by the lesson's own author (separation of duties),
    # save in a nation whose settings allow self-review (``policy.self_review_allowed``).
    separated: bool = False


TRANSITIONS: dict[str, Transition] = {
    t.to: t
    for t in (
        Transition("submitted", frozenset({"draft"}), "author", "required_fields",
                   "submitted", "Submit for review"),
        Transition("withdrawn", frozenset({"draft", "submitted"}), "author", None,
                   "withdrawn", "Withdraw"),
        Transition("draft", frozenset({"submitted"}), "analyst", "comment",
                   "returned", "Return to author"),
        Transition("validated", frozenset({"submitted"}), "analyst", None,
                   "validated", "Validate", separated=True),
        Transition("rejected", frozenset({"submitted"}), "analyst", "reason",
                   "rejected", "Reject", separated=True),
        Transition("action_assigned", frozenset({"validated"}), "analyst", "open_action",
                   "action_assigned", "Mark action assigned"),
        Transition("learned", frozenset({"validated", "action_assigned"}), "analyst",
                   "evidence", "learned", "Record as learned"),
        Transition("archived", frozenset(set(STATUSES) - {"draft", "archived"}), "analyst",
                   "reason", "archived", "Archive"),
    )
}

NOTE_LABELS = {"comment": "comment for the author", "reason": "reason", "evidence": "evidence"}
