"""slm-appliance: a self-contained small-language-model appliance for on-prem and edge boxes."""

__version__ = "0.1.0"
