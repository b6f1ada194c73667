"""Test builds only: the conformance endpoints (`router`) and the helpers of the fault switches (`faults`).

Nothing here acts unless `settings.federation.test_mode` is on, which production mode refuses
(conformance-tests/README.md)."""
