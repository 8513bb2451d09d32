"""Models of the customers app; filled in by its own issue."""
