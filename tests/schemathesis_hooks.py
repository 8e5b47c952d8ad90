"""Schemathesis hooks for tests/test_hardening.py::test_api_fuzz (SCHEMATHESIS_HOOKS)."""

import schemathesis


@schemathesis.check
def one_error_shape(ctx, response, case):
    """Every 4xx/5xx body is {"error": {"code": ..., "message": ...}}."""
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and {"code", "message"} <= set(body.get("error", {})), body
