"""What the workers run, one module per job kind (named by the kind's `handler`, `appliance.jobs.kinds`): apart
from the kinds because they import torch and transformers, which only a worker process may load."""
