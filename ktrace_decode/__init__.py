"""ktrace-decode: decode and analyse fuse kio pcs ktrace relay buffers.

Data flows one way: bytes -> records -> events -> episodes -> views/exports.
"""

__version__ = "0.1.0"
