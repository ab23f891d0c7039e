# Grants that connect one function's identity to a shared resource. Anything not
# granted here or in modules/function is denied: e.g. stripe_webhook cannot read the
# artifacts bucket, and nothing but download can.

# download: read release archives and sign V4 URLs *as itself* (IAM signBlob, no key
# file). Token Creator is granted on its own service account only.
resource "google_storage_bucket_iam_member" "download_reads_artifacts" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${local.deployed["download"].service_account_email}"
}

resource "google_service_account_iam_member" "download_signs_as_itself" {
  service_account_id = local.deployed["download"].service_account_id
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.deployed["download"].service_account_email}"
}

# Functions that enqueue e-mail: add tasks to the queue, and attach the tasks
# invoker identity to them (actAs) so Cloud Tasks can mint the OIDC token.
resource "google_cloud_tasks_queue_iam_member" "enqueuer" {
  for_each = local.enqueuers

  project  = var.project_id
  location = google_cloud_tasks_queue.email.location
  name     = google_cloud_tasks_queue.email.name
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${local.deployed[each.key].service_account_email}"
}

resource "google_service_account_iam_member" "enqueuer_acts_as_tasks_invoker" {
  for_each = local.enqueuers

  service_account_id = google_service_account.tasks_invoker.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${local.deployed[each.key].service_account_email}"
}

# Daily export: the exporter starts the export; Firestore's service agent writes the
# files, so both need the backups bucket (and nothing else).
resource "google_project_iam_member" "exporter" {
  project = var.project_id
  role    = "roles/datastore.importExportAdmin"
  member  = "serviceAccount:${google_service_account.firestore_exporter.email}"
}

resource "google_project_service_identity" "firestore" {
  provider = google-beta

  project = var.project_id
  service = "firestore.googleapis.com"

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket_iam_member" "backups_writers" {
  for_each = {
    exporter      = "serviceAccount:${google_service_account.firestore_exporter.email}"
    service_agent = "serviceAccount:${google_project_service_identity.firestore.email}"
  }

  bucket = google_storage_bucket.backups.name
  role   = "roles/storage.objectAdmin"
  member = each.value
}

resource "google_storage_bucket_iam_member" "backups_bucket_reader" {
  bucket = google_storage_bucket.backups.name
  role   = "roles/storage.legacyBucketReader"
  member = "serviceAccount:${google_project_service_identity.firestore.email}"
}
