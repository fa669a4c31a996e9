"""Analyses: MAC counting, complexity reports, the paper's long-sequence test, the zoo report."""
