"""aiinfra: plan, partition, provision and observe GPU infrastructure for AI.

Specs in, explained results out: every number carries its formula, inputs and sources.
"""

__version__ = "0.1.0"
