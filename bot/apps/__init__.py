"""The app registry: apps, their environments, and who may change them."""
