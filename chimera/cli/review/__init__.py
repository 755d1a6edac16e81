"""`chimera review`: the terminal and web front ends for deciding the problems a run holds for review."""
