"""Fine-tuning: GGUF base conversion, the LoRA training loop with checkpoints, evaluation."""
