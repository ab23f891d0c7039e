# Identities that are not functions. Each function's own identity lives in
# modules/function.

# Signs the OIDC tokens Cloud Tasks sends to the send_email worker.
resource "google_service_account" "tasks_invoker" {
  project      = var.project_id
  account_id   = "tasks-email-invoker"
  display_name = "Cloud Tasks -> send_email"
  description  = "OIDC identity of e-mail tasks; may invoke send_email and nothing else."

  depends_on = [google_project_service.enabled]
}

# Signs the OIDC tokens Cloud Scheduler sends to reconcile and email_sweeper.
resource "google_service_account" "scheduler_invoker" {
  project      = var.project_id
  account_id   = "scheduler-invoker"
  display_name = "Cloud Scheduler -> scheduled functions"
  description  = "OIDC identity of scheduler jobs; may invoke reconcile and email_sweeper only."

  depends_on = [google_project_service.enabled]
}

# Calls the Firestore export API for the daily backup.
resource "google_service_account" "firestore_exporter" {
  project      = var.project_id
  account_id   = "firestore-exporter"
  display_name = "Daily Firestore export"
  description  = "Starts Firestore exports into the backups bucket; reads no documents."

  depends_on = [google_project_service.enabled]
}

# Cloud Build identity for building the functions from the bundle (instead of the
# default compute service account, which is far too broad).
resource "google_service_account" "function_builder" {
  project      = var.project_id
  account_id   = "function-builder"
  display_name = "Cloud Functions builder"
  description  = "Builds function images from the source bundle."

  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "builder" {
  for_each = toset([
    "roles/logging.logWriter",
    # Writes the built image into the gcf-artifacts repository Cloud Functions creates.
    "roles/artifactregistry.writer",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.function_builder.email}"
}

resource "google_storage_bucket_iam_member" "builder_reads_source" {
  bucket = google_storage_bucket.function_source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.function_builder.email}"
}

# A 2nd gen function's build does not read the bundle from function_source: Cloud
# Functions first copies it into its own gcf-v2-sources-<project number>-<region> bucket
# and the build fetches it from there (a missing grant fails the build with "Access to
# bucket gcf-v2-sources-... denied. You must grant Storage Object Viewer permission to
# <build service account>"). Google's custom build service account guides list
# roles/storage.objectViewer for reading the function source:
#   https://cloud.google.com/functions/1stgendocs/securing/build-custom-sa
#   https://cloud.google.com/run/docs/configuring/services/build-service-account
# Google creates that bucket on the first deploy, so the grant is on the project with a
# condition on the bucket name: the builder still cannot read artifacts or backups.
resource "google_project_iam_member" "builder_reads_staged_source" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = "serviceAccount:${google_service_account.function_builder.email}"

  condition {
    title       = "gcf-v2-sources buckets only"
    description = "Function source staged by Cloud Functions for the build."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-\")"
  }
}
