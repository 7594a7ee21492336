"""The `slm-appliance` command line."""
