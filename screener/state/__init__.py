"""Entity state for stateful rules: per-partition stores, their changelog records and capacity counters."""
