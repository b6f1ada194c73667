"""Evidence files of individual deposits: content-addressed storage, type and size checks, access rules."""
