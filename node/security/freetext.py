"""Free text the node keeps (a bulk file's 备注, a report's echoed cell): ID-number-like strings masked.

An institution's remark column sometimes holds what it should not — "身份证号 310101… 补录" — and free text is
stored in clear (`achievement.remark`), echoed in rejected-row reports and shown to staff. `mask_id_like` replaces
anything shaped like an ID number by asterisks before it is stored:

- a run of 15 or more digits, in any script (full-width ３１０…, Arabic-Indic, Devanagari: every Unicode decimal
  digit), optionally split by single spaces or hyphens, with an optional trailing X — resident IDs (15 and 18
  characters), HK/Macau/Taiwan residence permits and the 18-digit foreigner permanent-residence card, and bank
  card numbers with them;
- three letters followed by 12 digits (the older foreigner permanent-residence card).

Shorter numbers (phone numbers, student numbers, dates) are left alone.
"""

from __future__ import annotations

import re

__all__ = ["mask_id_like"]

_ID_LIKE = re.compile(
    r"(?<!\d)\d(?:[ \-\u3000]?\d){14,}(?:[ \-]?[XxＸｘ])?(?!\d)"
    r"|(?<![A-Za-z])[A-Za-z]{3}\d{12}(?!\d)"
)


def mask_id_like(text: str) -> str:
    """`text` with every ID-number-like run replaced by as many asterisks."""
    return _ID_LIKE.sub(lambda m: "*" * len(m.group()), text)
