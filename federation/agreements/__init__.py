"""Mutual-recognition agreements between regions (docs/agreements.md, "Agreements").

Interface used by transfers: `active_agreement(session, origin=, destination=, on=)` and
`recognise(agreement, origin=, destination=, record=) -> Recognition | None`.
"""

from federation.agreements.document import Recognition, agreement_hash, recognise, verify_chain
from federation.agreements.service import active_agreement

__all__ = ["Recognition", "active_agreement", "agreement_hash", "recognise", "verify_chain"]
