"""Bulk deposit (集中存入): institutions upload files of outcomes; a background job deposits them.

docs/imports.md describes the formats, the validation rules, the report, idempotence and resumption.
"""
