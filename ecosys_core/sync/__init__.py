"""The sync engine: versions, scanning, deltas and the rules that apply remote changes. No sockets here."""
