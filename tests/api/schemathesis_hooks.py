"""Schemathesis hooks for Skiff's API run (scripts/api-fuzz.sh).

- Every 4xx answer must carry Skiff's JSON error body: an object with a string `code` and a
  string `message`.
- Watches are left out: `?watch=true` answers with a stream that stays open by design (the
  watch tests in tests/e2e cover it), so generated queries drop `watch`.
"""
import json

import schemathesis


@schemathesis.check
def error_answers_are_json_error_bodies(ctx, response, case):
    """A 4xx answer is an ErrorBody: {"code": str, "message": str, ...}."""
    if not 400 <= response.status_code < 500:
        return None
    content_type = response.headers.get("content-type", [""])
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    if not content_type.startswith("application/json"):
        raise AssertionError(
            f"{response.status_code} answer has content-type {content_type!r}, not application/json"
        )
    try:
        body = json.loads(response.content)
    except ValueError as e:
        raise AssertionError(f"{response.status_code} answer is not JSON: {e}") from e
    if not isinstance(body, dict):
        raise AssertionError(f"{response.status_code} answer is not a JSON object: {body!r}")
    for field in ("code", "message"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise AssertionError(f"{response.status_code} error body has no string {field!r}: {body!r}")
    return True


@schemathesis.hook
def map_query(context, query):
    if isinstance(query, dict):
        query.pop("watch", None)
    return query
