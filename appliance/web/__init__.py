"""HTTP machinery both the control API and the /v1 gateway use: key checks, the error mapping, app state."""
