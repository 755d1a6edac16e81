"""The built-in OpenAI-compatible simulator (an HTTP peer, not a code path)."""
