"""Data plane: batch tasks that apply, validate and record one batch; restore tasks.

Imports `kgmigrate` (core), never `orchestrator`.
"""
