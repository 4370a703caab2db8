"""reconciler: keeps multi-language CMAF HLS lectures in S3/CloudFront as manifests declare.

The library API lives in `reconciler.engine` (load -> plan -> apply); `reconciler.cli` is a thin
click skin over it.
"""

__version__ = "0.1.0"
