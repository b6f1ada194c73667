"""Transport: verified inbound requests, signed responses, signed outbound requests."""
