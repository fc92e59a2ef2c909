"""GPU telemetry: collection, export, and fleet analytics on Prometheus."""
