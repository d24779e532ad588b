"""A learned model: LightGBM trained offline, flattened into node arrays, scored by a Numba kernel."""
