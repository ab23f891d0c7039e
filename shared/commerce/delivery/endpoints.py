"""Request parsing and rendering of the delivery functions (`download`, `send_email`),
besides redirects: the token in the path, the task's retry count, the listing page.
The request bodies are `commerce.delivery.schemas`.

Kept free of heavy imports: the download function loads this on every cold start.
The listing page carries the buyer's own link, so it is sent with `no-store` and
`Referrer-Policy: no-referrer` (the token must not leak through a Referer header).
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:  # send_email imports this module too; it needs no download service
    from commerce.delivery.download import Listing

PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_TOKEN_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def token_from_path(path: str) -> str:
    """`/d/<token>` (or `/<token>`, when the function is addressed directly) -> token."""
    parts = [part for part in path.split("/") if part]
    if not parts or (len(parts) > 1 and parts[-2] != "d"):
        return ""
    candidate = parts[-1]
    return candidate if _TOKEN_SEGMENT.match(candidate) else ""


def retry_count(header: str | None) -> int:
    try:
        return max(0, int(header or 0))
    except ValueError:
        return 0


def file_link(base_url: str, token: str, platform: str) -> str:
    # Imported here: a redirect (the usual request) needs no link, and commerce.grants
    # brings the key service with it.
    from commerce.grants import download_link

    return f"{download_link(base_url, token)}?platform={quote(platform, safe='')}"


def listing_json(listing: Listing, base_url: str, token: str) -> dict[str, Any]:
    return {
        "version": listing.release.version,
        "channel": listing.release.channel,
        "expires_at": listing.grant.expires_at.isoformat(),
        "remaining": listing.grant.remaining,
        "files": [
            {
                "name": f.name,
                "platform": f.platform,
                "size": f.size,
                "sha256": f.sha256,
                "url": file_link(base_url, token, f.platform),
            }
            for f in listing.release.files
        ],
    }


def listing_html(listing: Listing, base_url: str, token: str, product_name: str) -> str:
    esc = html.escape
    rows = "\n".join(
        f'<tr><td><a href="{esc(file_link(base_url, token, f.platform))}">{esc(f.name)}</a></td>'
        f"<td>{f.size:,} bytes</td><td><code>{esc(f.sha256)}</code></td></tr>"
        for f in listing.release.files
    )
    expires = listing.grant.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Download {esc(product_name)} {esc(listing.release.version)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}
td,th{{padding:.3em .8em;text-align:left}}code{{font-size:.85em;word-break:break-all}}</style>
</head><body>
<h1>{esc(product_name)} {esc(listing.release.version)}</h1>
<p>Choose the file for your platform. This link is valid until {esc(expires)}
and allows {listing.grant.remaining} more download(s).</p>
<table><thead><tr><th>File</th><th>Size</th><th>SHA-256</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""
