"""Learner engagement (issue 16, items 5–8): incentive points, notices and their delivery, the learner's data
rights, counselling at an outlet. docs/engage.md, docs/privacy.md.

`points` (rules as data, the append-only points ledger, benefits), `notices` (decisions told by the workflow
that takes them through `node.decisions`, deadlines, preferences), `delivery` (e-mail by SMTP, SMS as an
interface; a claimed queue with backoff), `rights` (the export, correction requests, retention, institution
extracts), `counselling` (consent codes and what-ifs), `router` (the API), `jobs` (scheduled `engage.*` jobs).
"""

__all__: list[str] = []
