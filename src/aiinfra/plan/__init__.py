"""Parallelism planning: search every layout analytically, rank by time or cost, recommend hardware."""
