"""The OpenAI-compatible gateway: routing by model name, admission, relaying, metrics."""
