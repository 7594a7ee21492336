"""Training: GGUF base conversion, the training core on TRL's trainers (SFT, DPO, KTO, ORPO; one process or data
parallel), checkpoints a killed job resumes from, held-out figures before and after."""
