"""The starter model as the registry names it (the file's finder is `appliance.starter`, which loads nothing
else: the llama.cpp backend checks its CPU variants on it without loading the registry's store)."""

from appliance.starter import STARTER_FILE, STARTER_NAME, find_starter_gguf

__all__ = ["STARTER_FILE", "STARTER_NAME", "find_starter_gguf"]
