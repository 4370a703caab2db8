"""reconciler: keeps multi-language CMAF HLS lectures in S3/CloudFront as manifests declare.

The library API lives in `reconciler.engine` (load -> plan -> apply); `reconciler.cli` is a thin
click skin over it.
"""

__version__ = "1.0.0"  # the one place; CHANGELOG.md and the v* tag agree (release.yml)
