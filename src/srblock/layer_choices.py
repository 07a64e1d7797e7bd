"""The names configs and command-line flags offer for the zoo's attention layers and regularisers
(`attn`, `reg`), apart from the layers themselves (models/layers.py), so a config is checked
without importing the zoo."""

ATTN_LAYERS = (None, "se", "cbam")
REG_LAYERS = (None, "d", "d2d", "db")
