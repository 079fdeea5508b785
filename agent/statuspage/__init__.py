"""The public status page: `GET /` (and `/status`) as HTML, `GET /api/v2/summary.json` for tooling.

`config` holds the `status_page:` section (registered at import, kept light:
the config loader imports it); `page` assembles what the page shows from the
running agent (latest results, the store's history, alerting's incidents and
maintenance) and renders it; `routes` serves it. Nothing private reaches the
page: private checks are left out entirely, summaries are redacted and
internal addresses masked, and no link points at the API.
"""
