"""Greetings for the example project."""


def greet(name):
    """Return a greeting for `name`."""
    return "Hello"
