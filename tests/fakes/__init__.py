"""Protocol-level fakes: real servers speaking real APIs over snapshot directories."""
