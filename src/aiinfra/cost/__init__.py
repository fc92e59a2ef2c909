"""Cost of ownership: on-prem vs cloud vs hybrid, from dated prices (`aiinfra tco`).

Modules: prices (the dated catalog), cloud (rented $/GPU-h), capex (BOM and CRF), energy,
onprem (owned $/GPU-h), breakeven, hybrid (baseline + bursts), jobs (per-run and per-token),
decision (the recommendation), plot (cumulative cost), tco (all of it together).
"""
