"""Human review as the graph sees it: which problems wait for a person (policy) and what a person decides
(decision). The front ends to decide in are in chimera.cli.review."""
