"""Upscaler models (ESRGAN, Real-ESRGAN, SwinIR, DAT files): finding them, telling their
architecture and scale from their weights, running them tile by tile."""
