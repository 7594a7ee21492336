"""The daemon process: systemd notification and the serve loop."""
