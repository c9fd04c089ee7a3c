"""The local web dashboard and its JSON API, served by the daemon on 127.0.0.1 (docs/api.md)."""
