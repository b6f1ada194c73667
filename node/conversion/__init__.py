"""Conversion requests (学分转换): engine proposal → outlet confirmation (narrowing only) → review → ledger;
appeal once; what-if; signed exemption statements for the reverse direction (学分认可型)."""
