"""Reusable widgets of the control panel (each with its DEFAULT_CSS)."""
