"""Networking: device identity, frames, TLS transport, discovery, the local control channel."""
