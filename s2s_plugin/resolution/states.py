"""The states of a delivery (``s2s_deliveries.state``), as an enum whose values are the stored text.

    due ──claim──▶ leased ──attempt──▶ delivered | failed | due (a retry)
    skipped (resolution decided not to send it: it never leaves)

A resend makes a delivered, failed or waiting delivery due again.
"""

from __future__ import annotations

import enum


class DeliveryState(enum.StrEnum):
    """A delivery's state; a ``str``, so it compares equal to (and is stored as) its value."""

    DUE = "due"
    LEASED = "leased"
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def pending(self) -> bool:
        """Whether the delivery still has work to do (due, or being sent)."""
        return self in PENDING_STATES


#: States that still have work to do.
PENDING_STATES: tuple[DeliveryState, ...] = (DeliveryState.DUE, DeliveryState.LEASED)
#: States a resend makes due again.
RESENDABLE_STATES: tuple[DeliveryState, ...] = (DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.DUE)
