# One Cloud Function (2nd gen) together with the service account it runs as.
#
# The service account is created here, inside the same module instance, and nothing
# else can be passed in: every function therefore runs under its own identity, and the
# roles below are the only ones that identity holds (cross-cutting grants such as
# "download reads the artifacts bucket" are made by the caller on that identity).

locals {
  slug = replace(var.entry_point, "_", "-")
}

resource "google_service_account" "this" {
  project      = var.project_id
  account_id   = "fn-${local.slug}"
  display_name = "Cloud Function ${var.entry_point}"
  description  = "Runtime identity of the ${var.entry_point} function only."
}

resource "google_project_iam_member" "roles" {
  for_each = var.project_roles

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.this.email}"
}

# Access to exactly the secrets this function needs. The app reads them through the
# Secret Manager API (SECRETS_BACKEND=secret-manager, versions/latest); a function
# without access gets PermissionDenied and the feature that needs the secret fails
# closed.
resource "google_secret_manager_secret_iam_member" "access" {
  for_each = var.secret_ids

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.this.email}"
}

resource "google_cloudfunctions2_function" "this" {
  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-${local.slug}"
  description = var.description
  labels      = merge(var.labels, { entry-point = local.slug })

  build_config {
    runtime         = var.runtime
    entry_point     = var.entry_point
    service_account = var.build_service_account_id

    source {
      storage_source {
        bucket = var.source_bucket
        object = var.source_object
      }
    }
  }

  # Startup CPU boost is not settable here: service_config has no such argument in
  # provider 8.7 (only google_cloud_run_v2_service's containers.resources has
  # startup_cpu_boost); see docs/infrastructure.md, "Warm instances and startup CPU boost".
  service_config {
    service_account_email            = google_service_account.this.email
    available_memory                 = var.memory
    available_cpu                    = var.cpu
    timeout_seconds                  = var.timeout_seconds
    min_instance_count               = var.min_instances
    max_instance_count               = var.max_instances
    max_instance_request_concurrency = var.concurrency
    ingress_settings                 = var.ingress
    all_traffic_on_latest_revision   = true
    environment_variables            = var.environment_variables
  }

  depends_on = [google_secret_manager_secret_iam_member.access]
}

# A 2nd gen function is served by a Cloud Run service of the same name; invocation is
# authorised there.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = var.invokers

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this.name
  role     = "roles/run.invoker"
  member   = each.value
}
