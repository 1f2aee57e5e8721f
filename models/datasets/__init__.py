"""The Synthetic Shapes dataset, accuracy metrics, and the fixture checkpoint format trained on them."""
