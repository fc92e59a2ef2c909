"""GPU sharing: MIG placement and packing, time-slicing and MPS, Kubernetes manifests and their linter."""
