"""Air-gapped delivery: a signed folder of packages and models that is checked in full before it is used."""
