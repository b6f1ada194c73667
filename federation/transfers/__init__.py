"""Learner consent and cross-region transfer (docs/agreements.md, "Consent and transfer").

`consent` is the origin side (signed consents, releasing records, receipts); `transfer` the destination side
(holder bindings, pulling and verifying, recognition under the active agreement, review, receipts);
`router` their HTTP routes and the `transfer.receipt` message handler.
"""
