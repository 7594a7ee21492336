"""The Textual control panel: a client of the daemon's HTTP API, never a second brain."""
