"""Models of the analytics app; filled in by its own issue."""
