"""provision: turn bare GPU servers into an on-prem LLM serving fleet."""

__version__ = "0.1.0"
