"""`chimera view DB`: a local, read-only web page to browse a run's problems, votes and samples."""
