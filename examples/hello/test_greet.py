"""Run with: python3 test_greet.py"""

from greet import greet

assert greet("Ada") == "Hello, Ada!", greet("Ada")
print("ok")
