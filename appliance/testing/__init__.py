"""Drivers of a real daemon for the test suite and the benches: the daemon as a subprocess, the update flow as
API calls, a small synthetic dataset. Nothing here stands in for a part of the appliance."""
