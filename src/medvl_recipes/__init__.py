"""medvl-recipes: recipes and an evaluation harness for medical image-to-report models."""

__version__ = "0.1.0"
