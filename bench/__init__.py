"""Benchmark protocols as plain functions: what is compared, with which budget, and how the numbers are
summarised. Flows decorate them; layers: flows -> bench -> train -> synth."""
