"""The demo's sign-ins: one account per role at every region, each with a password generated for this run.

No password is written in the code: `demo_password()` draws a fresh one for every account of every run
(`secrets`), the demo creates the accounts through each node's admin API and prints them when it keeps running
(`creditnode demo --keep-running`), so a person can try every page of the portal in the role it is for. The
passwords are worth nothing outside this run's throw-away nodes on 127.0.0.1.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape

__all__ = ["STAFF_ROLES", "SignIn", "SignIns", "demo_password"]

# username → role of the staff accounts the demo opens at every region (the node administrator `admin` is made by
# `creditnode init`). The institution uploader belongs to a university of the region.
STAFF_ROLES: tuple[tuple[str, str], ...] = (
    ("outlet", "outlet_staff"),
    ("branch", "branch_reviewer"),
    ("centre", "centre_reviewer"),
    ("uploader", "institution_uploader"),
    ("standards", "standards_admin"),
    ("fedadmin", "federation_admin"),
    ("auditor", "auditor"),
)
ROLE_ORDER = ("learner", "outlet_staff", "branch_reviewer", "centre_reviewer", "institution_uploader",
              "standards_admin", "federation_admin", "auditor", "node_admin")


def demo_password() -> str:
    """A password for one demo account, new for every run (16 random URL-safe characters after `demo-`)."""
    return "demo-" + secrets.token_urlsafe(12)


@dataclass(frozen=True)
class SignIn:
    role: str
    username: str
    password: str
    note: str = ""


@dataclass
class SignIns:
    """The accounts of this run, per region."""

    by_region: dict[str, list[SignIn]] = field(default_factory=dict)

    def add(self, region: str, role: str, username: str, password: str, note: str = "") -> None:
        self.by_region.setdefault(region, []).append(SignIn(role, username, password, note))

    def password(self, region: str, username: str) -> str:
        return next(s.password for s in self.by_region.get(region, []) if s.username == username)

    def print(self, console: Console, region: str) -> None:
        """The region's sign-ins, one line per role: role, user (or account number), password, a note."""
        rows = sorted(self.by_region.get(region, []), key=lambda s: ROLE_ORDER.index(s.role)
                      if s.role in ROLE_ORDER else len(ROLE_ORDER))
        for s in rows:
            kind = "account" if s.role == "learner" else "user"
            note = f"   ({s.note})" if s.note else ""
            console.print(f"      {s.role:21} {kind} {escape(s.username):12} password {escape(s.password)}"
                          f"{escape(note)}", highlight=False)
