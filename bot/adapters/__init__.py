"""Narrow constructors and functions over the outside world's clients."""
