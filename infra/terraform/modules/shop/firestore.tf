resource "google_firestore_database" "main" {
  project                           = var.project_id
  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "PESSIMISTIC" # what commerce.repositories.firestore_wire assumes
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED" # 7 days of PITR
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  # `terraform destroy` must never delete the orders and licenses.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.enabled]
}

# TTL policies: Firestore deletes a document some time (typically within a day)
# after the timestamp in the named field. The app writes these fields; the TTL only
# keeps the collections from growing forever. Audit and webhook records carry a
# separate purge_at (their retention is longer than their usefulness window).
locals {
  ttl_policies = {
    download_tokens = "expires_at"
    rate_limits     = "expires_at"
    webhook_events  = "purge_at"
    audit_log       = "purge_at"
  }
}

resource "google_firestore_field" "ttl" {
  for_each = local.ttl_policies

  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = each.key
  field      = each.value

  # Single-field indexes stay at the database default (no index_config block).
  ttl_config {}
}

# Composite indexes come from firestore.indexes.json (Firebase CLI format), the same
# file the local tooling uses, so the two cannot drift.
locals {
  firestore_index_file = jsondecode(file(var.firestore_indexes_file))
  firestore_indexes = {
    for index in lookup(local.firestore_index_file, "indexes", []) :
    join("|", concat(
      [index.collectionGroup, lookup(index, "queryScope", "COLLECTION")],
      [for field in index.fields : "${field.fieldPath}:${lookup(field, "order", lookup(field, "arrayConfig", ""))}"],
    )) => index
  }
}

resource "google_firestore_index" "composite" {
  for_each = local.firestore_indexes

  project     = var.project_id
  database    = google_firestore_database.main.name
  collection  = each.value.collectionGroup
  query_scope = lookup(each.value, "queryScope", "COLLECTION")

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.fieldPath
      order        = lookup(fields.value, "order", null)
      array_config = lookup(fields.value, "arrayConfig", null)
    }
  }
}
