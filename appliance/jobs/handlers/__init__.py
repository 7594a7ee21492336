"""One module per job type; each exposes `run_<type>(spec, emitter) -> result dict`."""
