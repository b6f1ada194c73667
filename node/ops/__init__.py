"""Operations: finding the configuration, start-up and readiness checks (`checks`), the health, readiness and
metrics routes with the request-id and metrics middleware and the offline API docs (`web.install`), and the
metrics themselves (`metrics`)."""
