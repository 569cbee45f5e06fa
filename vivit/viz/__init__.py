"""Pictures: attention over a clip's frames, training curves, confusion matrices. Headless (matplotlib's Agg)."""
