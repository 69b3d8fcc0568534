"""The extension runtime: scripts (selectable and always-on) and their registry (DESIGN §8)."""
