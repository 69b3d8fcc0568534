"""The bundled demo model: its dataset generator, trainer and evaluation."""
