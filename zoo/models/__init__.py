"""The model families; importing this package registers every configuration."""
