"""HTTP plumbing shared by `/v1` and `/v2`: error shapes and statuses, request guards,
the OpenAPI document."""
