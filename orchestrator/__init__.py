"""Control plane: plans steps into batches, builds the Celery canvas, runs control tasks.

Imports `kgmigrate` (core), never `workers`: batch tasks are addressed by name.
"""
