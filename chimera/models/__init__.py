"""The one door for model calls: the client per role (llm), the in-flight budgets (dispatch, concurrency), the
transports (HTTP, batches, LangChain), reply schemas and the reasoning split, prices, tracing and secrets."""
