"""Ecosys: opportunistic synchronisation of folders and app data between one person's devices.

The public library API lives in the submodules; this package only carries the version.
"""

__version__ = "0.1.0"
