"""Kept for imports written before sizing/commands.py: the size Results live there now."""

from aiinfra.sizing.commands import fits_report, inference_report, training_report, verdict_line

__all__ = ["fits_report", "inference_report", "training_report", "verdict_line"]
