"""Parcel risk screener: Kafka manifests in, one explained decision per parcel out."""

__version__ = "0.1.0"
