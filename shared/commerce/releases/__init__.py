"""Releases, used by delivery (downloads, e-mails) and licensing (updates): publishing
and yanking (`service`) and their Firestore collection (`repository`). The pure rules
(versions, file names, the signed manifest) are `commerce.domain.releases`."""
