"""Across nodes: the Prometheus client, PromQL, fleet analysis, alert rules, dashboards and `top`.

`telemetry/` is what runs on one node (collect, simulate, export, parse); this package reads many
nodes through Prometheus' HTTP API and never pulls raw series into Python when PromQL can do the work.
"""
