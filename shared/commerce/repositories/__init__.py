"""Firestore repositories: the only code that touches the Firestore client.

Every method takes an optional transaction. Reads inside a transaction must come
before its writes (Firestore's rule); services arrange that.

The package loads nothing itself: import the module you need
(`commerce.repositories.collections`, `.rate_limits`, `.base`...). A function that
stores rate-limit counters only (checkout) then never loads every document model
(docs/performance.md, "Cold start").
"""
