"""Server-rendered HTML pages: the alert page that notifications link to, and the list."""
