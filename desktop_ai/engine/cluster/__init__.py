"""Folder jobs on a Ray cluster: the engine's own task classes run inside Ray actors, one model per actor.

connection.py connects (or starts a cluster on this machine), tasks.py says how each job kind reads, keys and runs
its inputs, worker.py is the actor, and jobs.py hands out batches, redoes a dead worker's batch and streams the
results back in input order into the local result cache. `ray` is imported here only, and only when a job asks
for a cluster, so the app runs without it.
"""
