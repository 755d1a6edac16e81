"""Human review: which problems wait for a person (policy), what a person decides (decision),
and the two places to decide (terminal, web page)."""
