"""Time of models: FLOPs, compute time, NCCL communication, training step time and inference latency."""
