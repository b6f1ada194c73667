"""Recognition of prior learning (先前学习认定): portfolio, assessment against a standard, the centre's
confirmation, and the outcome as an achievement with its provenance (docs/projects.md)."""
