"""Benchmark harness of the parcel screener: `python -m benchmarks.run --full|--quick|--smoke`."""
