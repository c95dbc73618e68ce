"""Directory administration: the directory copy, the Users page and its account actions."""
