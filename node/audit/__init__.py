"""The audit log: every staff, admin and institution action, append-only, readable by auditors."""
