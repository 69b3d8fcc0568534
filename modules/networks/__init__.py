"""Add-on networks applied at generation time: LoRA, textual inversion embeddings."""
