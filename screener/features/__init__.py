"""Features a stream can compute for a parcel: its own fields, derived ratios, and online entity statistics."""
