"""Backups: the store (undo records, snapshots) and whole-graph snapshots."""
