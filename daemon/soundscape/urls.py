"""The one check for the http(s) URLs a user types (``--scope-url``, ``[scope].url``)."""

from __future__ import annotations

from urllib.parse import urlsplit


def http_url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable http(s) base URL, or None when it is."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises for a port that is not a number or out of range)
    except ValueError as err:
        return f"{url!r} is not a usable URL: {err}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        hint = f" (did you mean 'http://{text}'?)" if "://" not in text and text else ""
        return f"{url!r} is not an http(s) URL{hint}"
    if any(c.isspace() for c in text):
        return f"{url!r} contains spaces"
    return None
