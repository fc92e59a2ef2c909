"""Cluster designer: compute fabric, storage, management, power, BOM and reference architectures.

`design.design_cluster(DesignInput)` composes the pieces; each module is usable on its own.
"""
