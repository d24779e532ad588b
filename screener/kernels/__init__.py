"""Numba kernels: arrays in, arrays out, each beside a plain-Python reference implementation."""
