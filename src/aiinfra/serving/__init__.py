"""Serving plans: how many GPUs of which kind, in what layout, serve a request rate within TTFT/TPOT targets."""
