"""The checks behind each contract clause, grouped by theme."""
