# Scheduled functions are invoked with an OIDC token of the scheduler identity; their
# Cloud Run services accept no other caller (see module.function invokers).
locals {
  scheduled_functions = {
    reconcile     = var.reconcile_schedule
    email_sweeper = var.email_sweeper_schedule
  }
}

resource "google_cloud_scheduler_job" "function" {
  for_each = local.scheduled_functions

  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  description      = "Invokes the ${each.key} function."
  schedule         = each.value
  time_zone        = var.scheduler_time_zone
  attempt_deadline = "${local.function_sizing[each.key].timeout_seconds}s"

  # A failed run is simply retried by the next scheduled run; retry a couple of
  # times in between so a transient error does not wait a whole period.
  retry_config {
    retry_count          = 2
    min_backoff_duration = "30s"
    max_backoff_duration = "300s"
  }

  http_target {
    http_method = "POST"
    uri         = local.deployed[each.key].uri
    headers     = { "Content-Type" = "application/json" }
    # Exactly this request (method, headers, body, Google's own headers) is sent to each
    # function in tests/integration/test_scheduled_and_queued_calls.py and tests/e2e.
    body = base64encode(jsonencode({ trigger = "scheduler" }))

    oidc_token {
      service_account_email = google_service_account.scheduler_invoker.email
      audience              = local.deployed[each.key].uri
    }
  }

  depends_on = [google_project_service.enabled]
}

# Daily managed export of the whole database through the Firestore Admin API
# (exportDocuments), authenticated with an OAuth token of the exporter identity.
# With a bare bucket as outputUriPrefix, Firestore writes each export under a new
# timestamped prefix, so exports never overwrite each other.
resource "google_cloud_scheduler_job" "firestore_export" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-firestore-export"
  description      = "Daily Firestore export to gs://${google_storage_bucket.backups.name}."
  schedule         = var.firestore_export_schedule
  time_zone        = var.scheduler_time_zone
  attempt_deadline = "320s"

  retry_config {
    retry_count          = 3
    min_backoff_duration = "60s"
    max_backoff_duration = "600s"
  }

  http_target {
    http_method = "POST"
    uri         = "https://firestore.googleapis.com/v1/projects/${var.project_id}/databases/${google_firestore_database.main.name}:exportDocuments"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode({ outputUriPrefix = "gs://${google_storage_bucket.backups.name}" }))

    oauth_token {
      service_account_email = google_service_account.firestore_exporter.email
      scope                 = "https://www.googleapis.com/auth/datastore"
    }
  }

  depends_on = [google_project_service.enabled]
}
