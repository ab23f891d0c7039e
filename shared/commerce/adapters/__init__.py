"""Adapters to Google Cloud services other than Firestore (Cloud Storage, Cloud Tasks).

The feature packages import none of google.cloud; the composition root builds these
and hands them to the services, which see only what they need (`signed_url`,
`enqueue`). Firestore's adapters are in `commerce.repositories`.
"""
