"""The explorer (`python -m reference serve`): the server and its JSON API (`server.py`), what it
computes for a prompt and keeps between requests (`state.py`), and the page it serves
(`static/`: one HTML file, one script, one style sheet).
"""
