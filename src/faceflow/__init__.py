"""faceflow: self-hosted, high-throughput face analysis and ID photos."""

__version__ = "0.1.0"
