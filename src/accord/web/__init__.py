"""The web app face: server-rendered pages (Jinja2 + htmx) for marketers, analysts and store associates."""
