"""On a node: NVML collector, simulated fleet, field catalog, dcgm-exporter-compatible exporter,
exposition parser and the node doctor. Fleet-wide reading lives in `aiinfra.fleet`."""
