"""Backtests: replay history through the worker's batch code, with labels arriving late, and measure detection."""
