"""Read a DynamoDB Streams archive back: list it, print events in order."""

__version__ = "0.1.0"
