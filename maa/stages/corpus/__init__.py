"""Corpus tools: the labelled corpus from Debian sound packages (build, rules, sources, slice)."""
