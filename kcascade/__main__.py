"""``python -m kcascade``: fit the built-in example and print a short table."""
from kcascade.cli import main

main()
