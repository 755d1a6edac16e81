"""One module per role. Each is render prompt -> one model call -> parse reply."""
