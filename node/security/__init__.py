"""Identity documents, field encryption, blind indexes, passwords and tokens."""
