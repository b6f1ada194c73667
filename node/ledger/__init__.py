"""The append-only ledger: every change to a learner's record is an event chained to the previous one."""
